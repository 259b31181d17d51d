// lib/sched/spinlock.hpp: the short lock that guards run-queue and primitive state.
//
// Critical sections under a spinlock are a handful of pointer writes; none
// blocks or allocates, and only one spans a context switch: a fiber parking
// on a channel with no deadline keeps the channel's lock until it has
// switched out, and its worker releases it at once, before the next fiber
// continues (waiter::park_holding, lib/sched/park.hpp). Holders never
// sleep, so spinning beats sleeping.
// After a short spin the
// waiting thread yields its CPU, so a holder preempted by the kernel is not
// starved by the spinners.
#pragma once

#include <sched.h>

#include <atomic>
#include <cstdint>

namespace spindle::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// spinlock_ref: operations on a lock word owned elsewhere (e.g. in a public header).
class spinlock_ref {
 public:
  explicit spinlock_ref(std::atomic<std::uint32_t>& word) noexcept : word_(word) {}
  void lock() noexcept {
    for (int spins = 0; word_.exchange(1, std::memory_order_acquire) != 0;) {
      while (word_.load(std::memory_order_relaxed) != 0) {
        if (++spins < 128) {
          cpu_relax();
        } else {
          sched_yield();
        }
      }
    }
  }
  bool try_lock() noexcept { return word_.exchange(1, std::memory_order_acquire) == 0; }
  void unlock() noexcept { word_.store(0, std::memory_order_release); }
  std::atomic<std::uint32_t>& word() const noexcept { return word_; }

 private:
  std::atomic<std::uint32_t>& word_;
};

// lock_contended: takes `lock`, found taken by a primitive_lock_ref, and
// adds the time it waited to the calling worker's processor
// (processor::lock_wait_ns; nothing on a plain thread). scheduler.cpp.
void lock_contended(spinlock_ref lock) noexcept;

// primitive_lock_ref: the lock of a fiber-level primitive (a channel, a
// mutex's wait queue...). A spinlock_ref that times its contended
// acquisitions: a lock held across a switch is released before the
// processor's next fiber continues (park_holding), so waiting for
// one means fibers on different processors share it, and a processor that
// spends much of its time waiting is one the balancer stops spreading
// (monitor.cpp, step 2). The uncontended path reads no clock.
class primitive_lock_ref {
 public:
  explicit primitive_lock_ref(std::atomic<std::uint32_t>& word) noexcept : lock_(word) {}
  void lock() noexcept {
    if (!lock_.try_lock()) lock_contended(lock_);
  }
  bool try_lock() noexcept { return lock_.try_lock(); }
  void unlock() noexcept { lock_.unlock(); }
  operator spinlock_ref() const noexcept { return lock_; }

 private:
  spinlock_ref lock_;
};

// owning_lock: a lock that owns its word, taken through Ref (spinlock_ref or
// primitive_lock_ref); it converts to the spinlock_ref that waiter::park
// releases.
template <class Ref>
class owning_lock {
 public:
  void lock() noexcept { Ref(word_).lock(); }
  bool try_lock() noexcept { return Ref(word_).try_lock(); }
  void unlock() noexcept { Ref(word_).unlock(); }
  operator spinlock_ref() noexcept { return spinlock_ref(word_); }

 private:
  std::atomic<std::uint32_t> word_{0};
};

// spinlock: a spinlock that owns its word.
using spinlock = owning_lock<spinlock_ref>;
// primitive_lock: a primitive_lock_ref that owns its word.
using primitive_lock = owning_lock<primitive_lock_ref>;

}  // namespace spindle::detail
