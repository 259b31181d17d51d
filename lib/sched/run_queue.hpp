// lib/sched/run_queue.hpp: the queues runnable fibers wait in.
//
// run_queue: a processor's local ring (Go's p.runq). Single producer (the
// worker owning the processor), many consumers (the owner, and the monitor's
// balancer or a handoff taking a batch). The producer publishes a slot with a
// release store of tail_; consumers claim slots with a CAS on head_. Slots are
// relaxed atomics because a consumer may read a slot the producer is about to
// reuse; the CAS on head_ decides whose read counts.
//
// fiber_queue: a locked, growable ring of fiber pointers, used for the global
// inject queue and for each processor's inbox. Its length is published in an
// atomic so that emptiness checks take no lock. Queues hold pointers, not
// links through the fibers, because a fiber's control block sits at the top
// of its stack: following links would take a cache miss per fiber.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "sched/spinlock.hpp"

namespace spindle::detail {

struct fiber;

// fiber_batch: fibers moved between queues in one go, by pointer: moving a
// batch never touches the fibers themselves (their memory is usually cold).
struct fiber_batch {
  static constexpr std::uint32_t capacity = 257;  // a ring at its spread limit, plus one
  fiber* items[capacity];
  std::uint32_t size = 0;

  void push(fiber* f) noexcept { items[size++] = f; }
  bool empty() const noexcept { return size == 0; }
};

class run_queue {
 public:
  static constexpr std::uint32_t capacity = 2048;
  // spread_limit: how full a ring gets before it overflows to the global
  // queue, unless its processor is on hold (scheduler.cpp, "Why balancing").
  static constexpr std::uint32_t spread_limit = 256;

  // push: owner only. Returns false when the ring holds `limit` fibers.
  bool push(fiber* f, std::uint32_t limit) noexcept {
    const std::uint32_t head = head_.load(std::memory_order_acquire);
    const std::uint32_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head >= limit) return false;
    slots_[tail % capacity].store(f, std::memory_order_relaxed);
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  // pop: owner only. The oldest fiber, or nullptr.
  fiber* pop() noexcept {
    for (;;) {
      std::uint32_t head = head_.load(std::memory_order_acquire);
      const std::uint32_t tail = tail_.load(std::memory_order_relaxed);
      if (head == tail) return nullptr;
      fiber* f = slots_[head % capacity].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(head, head + 1, std::memory_order_release,
                                      std::memory_order_relaxed)) {
        return f;
      }
    }
  }

  // peek: owner only. The fiber `ahead` places from the oldest (0: the
  // oldest), left queued, or nullptr. A hint: the balancer may take it
  // meanwhile.
  fiber* peek(std::uint32_t ahead) const noexcept {
    const std::uint32_t head = head_.load(std::memory_order_relaxed);
    if (tail_.load(std::memory_order_relaxed) - head <= ahead) return nullptr;
    return slots_[(head + ahead) % capacity].load(std::memory_order_relaxed);
  }

  // grab: any thread. Appends up to `max` of the oldest fibers, at most half
  // the ring rounded up, to `out`; returns how many.
  std::uint32_t grab(fiber_batch& out, std::uint32_t max) noexcept;

  // size: a snapshot, exact only for the owner.
  std::uint32_t size() const noexcept {
    const std::uint32_t head = head_.load(std::memory_order_acquire);
    const std::uint32_t tail = tail_.load(std::memory_order_acquire);
    return tail - head <= capacity ? tail - head : 0;
  }

 private:
  alignas(64) std::atomic<std::uint32_t> head_{0};  // consumers CAS
  alignas(64) std::atomic<std::uint32_t> tail_{0};  // only the owner stores
  std::atomic<fiber*> slots_[capacity] = {};
};

// fiber_queue: an unbounded FIFO of fiber pointers behind a spinlock, with a
// lock-free length: the global queue and each processor's inbox.
class fiber_queue {
 public:
  void push(fiber* f) noexcept {
    std::lock_guard lock(lock_);
    append(f);
    size_.store(count_, std::memory_order_relaxed);
  }
  void push_all(const fiber_batch& batch) noexcept { push_all(batch.items, batch.size); }
  void push_all(fiber* const* fibers, std::size_t n) noexcept {
    std::lock_guard lock(lock_);
    for (std::size_t i = 0; i < n; ++i) append(fibers[i]);
    size_.store(count_, std::memory_order_relaxed);
  }
  fiber* pop() noexcept {
    std::lock_guard lock(lock_);
    if (count_ == 0) return nullptr;
    fiber* f = take();
    size_.store(count_, std::memory_order_relaxed);
    return f;
  }
  // pop_batch: appends up to max fibers to out (max <= its free room).
  void pop_batch(fiber_batch& out, std::uint32_t max) noexcept {
    std::lock_guard lock(lock_);
    while (max-- > 0 && count_ > 0) out.push(take());
    size_.store(count_, std::memory_order_relaxed);
  }
  std::uint32_t size() const noexcept { return size_.load(std::memory_order_relaxed); }
  bool empty() const noexcept { return size() == 0; }

 private:
  void append(fiber* f) {
    if (count_ == slots_.size()) grow();
    slots_[(head_ + count_) & (slots_.size() - 1)] = f;
    ++count_;
  }
  fiber* take() noexcept {
    fiber* f = slots_[head_];
    head_ = (head_ + 1) & (slots_.size() - 1);
    --count_;
    return f;
  }
  void grow();

  spinlock lock_;
  std::vector<fiber*> slots_ = std::vector<fiber*>(256);  // guarded by lock_; size a power of two
  std::size_t head_ = 0;                                  // guarded by lock_
  std::uint32_t count_ = 0;                               // guarded by lock_
  std::atomic<std::uint32_t> size_{0};  // count_, written under lock_, read without it
};

}  // namespace spindle::detail
