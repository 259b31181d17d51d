// lib/sched/park.hpp: blocking for fibers and plain threads alike.
//
// Every blocking primitive (join, channels, mutexes, timers, I/O) blocks the
// same way: the blocked party puts a waiter, living on its own stack, into
// the primitive's wait queue while holding the primitive's lock, and calls
// waiter::park(lock). Whoever satisfies the wait takes the waiter off the
// queue under the lock, and calls waiter::wake() (preferably after unlocking).
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

  // park: blocks until wake(). `lock` is held on entry and released exactly
  // once, as described above; it is not re-acquired.
  void park(spinlock_ref lock) noexcept;
  // wake: makes the parked owner runnable. Call once per park.
  void wake() noexcept;

  bool is_fiber() const noexcept { return fiber_ != nullptr; }

 private:
  fiber* fiber_;
  std::atomic<std::uint32_t> woken_{0};  // plain threads only
};

}  // namespace spindle::detail
