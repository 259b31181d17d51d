// lib/sched/park.hpp: blocking for fibers and plain threads alike.
//
// Every blocking primitive (join, channels, mutexes, timers, I/O) blocks the
// same way, in the style of Go's sudog:
//   1. The blocked party creates a waiter on its own stack, links an entry
//      pointing to it into the primitive's wait queue while holding the
//      primitive's lock, and calls waiter::park(lock) or park_until(lock, t).
//   2. A waker, under the primitive's lock, takes an entry off the queue and
//      calls waiter::try_claim(). Only if that returns true may it complete the
//      operation for that waiter (copy a value into its slot, grant it the
//      lock...) and, after releasing the lock, call waiter::wake(). If it
//      returns false, the waiter was already claimed by someone else (another
//      case of a select, or its own deadline) and the waker moves on.
//   3. A waiter that returns from park_until with false timed out: nobody
//      claimed it, so it must re-lock and unlink its entries itself.
//
//   From a fiber:  park switches the fiber out; the worker then releases the
//                  lock (after_switch), so a waker can only find the waiter
//                  once the fiber's context is saved. wake() readies the
//                  fiber (into the waker's runnext when the waker is a fiber).
//   From a thread: park releases the lock and sleeps on a futex word in the
//                  waiter; wake() sets the word and wakes the thread.
//
// Hazard: once wake() is called the waiter may be destroyed at any moment
// (its owner returns from park); wake() reads what it needs first.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "sched/spinlock.hpp"

namespace spindle::detail {

struct fiber;

class waiter {
 public:
  // waiter: binds to the caller, the running fiber or this plain thread.
  waiter() noexcept;
  waiter(const waiter&) = delete;
  waiter& operator=(const waiter&) = delete;

  // try_claim: the right to complete this waiter's operation and wake it.
  // True for exactly one caller per park. Call under the primitive's lock.
  bool try_claim() noexcept {
    std::uint32_t expected = unclaimed;
    return claim_.compare_exchange_strong(expected, claimed, std::memory_order_acq_rel);
  }
  // park: blocks until wake(). `lock` is held on entry and released exactly
  // once, as described above; it is not re-acquired.
  void park(spinlock_ref lock) noexcept;
  // park_until: as park, but gives up at `deadline` if nobody has claimed the
  // waiter by then. Returns true when woken, false on timeout.
  bool park_until(spinlock_ref lock, std::chrono::steady_clock::time_point deadline) noexcept;
  // park_then: blocks until wake(), like park, but instead of releasing a
  // lock it calls then(arg) once the caller can no longer miss its wake:
  // from a fiber, after it switched out; from a thread, before it sleeps.
  // `then` typically hands the waiter to another thread (e.g. submits an
  // I/O request to the event loop whose completion will wake it). Returns
  // false if `deadline` passed first and nobody had claimed the waiter.
  bool park_then(void (*then)(void* arg), void* arg,
                 std::chrono::steady_clock::time_point deadline =
                     std::chrono::steady_clock::time_point::max()) noexcept;
  // wake: makes the parked owner runnable. Only after a successful try_claim().
  void wake() noexcept;

  bool is_fiber() const noexcept { return fiber_ != nullptr; }

 private:
  bool block_thread_until(std::chrono::steady_clock::time_point deadline) noexcept;

  enum : std::uint32_t { unclaimed = 0, claimed = 1 };
  fiber* fiber_;
  std::atomic<std::uint32_t> claim_{unclaimed};
  std::atomic<std::uint32_t> woken_{0};  // plain threads only
};

}  // namespace spindle::detail
