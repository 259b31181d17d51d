// lib/sched/run_queue.hpp: the queues runnable fibers wait in.
//
// run_queue: a processor's local ring (Go's p.runq). Single producer (the
// worker owning the processor), many consumers (the owner, and the monitor's
// balancer or a handoff taking a batch). The producer publishes a slot with a
// release store of tail_; consumers claim slots with a CAS on head_. Slots are
// relaxed atomics because a consumer may read a slot the producer is about to
// reuse; the CAS on head_ decides whose read counts.
//
// fiber_list / locked_fiber_list: intrusive FIFO lists through fiber::next,
// used for the global inject queue and for each processor's inbox. The
// length is published in an atomic so that emptiness checks take no lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

#include "sched/spinlock.hpp"

namespace spindle::detail {

struct fiber;

// fiber_list: an unlocked intrusive FIFO of fibers.
struct fiber_list {
  fiber* head = nullptr;
  fiber* tail = nullptr;
  std::uint32_t size = 0;

  void push_back(fiber* f) noexcept;
  void append(fiber_list& other) noexcept;  // moves other's fibers to the back
  fiber* pop_front() noexcept;
  bool empty() const noexcept { return head == nullptr; }
};

class run_queue {
 public:
  static constexpr std::uint32_t capacity = 256;

  // push: owner only. Returns false when the ring is full.
  bool push(fiber* f) noexcept {
    const std::uint32_t head = head_.load(std::memory_order_acquire);
    const std::uint32_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head >= capacity) return false;
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

  // grab: any thread. Takes up to `max` of the oldest fibers, at most half the
  // ring rounded up, into `out`; returns how many.
  std::uint32_t grab(fiber_list& out, std::uint32_t max) noexcept;

  // take_half_for_overflow: owner only, on a full ring: the oldest half.
  std::uint32_t take_half(fiber_list& out) noexcept { return grab(out, capacity / 2); }

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

// locked_fiber_list: a fiber_list behind a spinlock, with a lock-free length.
class locked_fiber_list {
 public:
  void push(fiber* f) noexcept {
    std::lock_guard lock(lock_);
    list_.push_back(f);
    size_.store(list_.size, std::memory_order_relaxed);
  }
  void push_all(fiber_list& fibers) noexcept {
    std::lock_guard lock(lock_);
    list_.append(fibers);
    size_.store(list_.size, std::memory_order_relaxed);
  }
  fiber* pop() noexcept {
    std::lock_guard lock(lock_);
    fiber* f = list_.pop_front();
    size_.store(list_.size, std::memory_order_relaxed);
    return f;
  }
  // pop_batch: moves up to max fibers into out.
  void pop_batch(fiber_list& out, std::uint32_t max) noexcept {
    std::lock_guard lock(lock_);
    for (std::uint32_t i = 0; i < max && !list_.empty(); ++i) out.push_back(list_.pop_front());
    size_.store(list_.size, std::memory_order_relaxed);
  }
  std::uint32_t size() const noexcept { return size_.load(std::memory_order_relaxed); }
  bool empty() const noexcept { return size() == 0; }

 private:
  spinlock lock_;
  fiber_list list_;                       // guarded by lock_
  std::atomic<std::uint32_t> size_{0};    // written under lock_, read without it
};

}  // namespace spindle::detail
