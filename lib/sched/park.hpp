// lib/sched/park.hpp: blocking for fibers and plain threads alike.
//
// Every blocking primitive (join, channels, mutexes, timers, I/O) blocks the
// same way, in the style of Go's sudog:
//   1. The blocked party creates a waiter on its own stack, links an entry
//      pointing to it into the primitive's wait queue while holding the
//      primitive's lock, and calls waiter::park(lock) or park_until(lock, t),
//      which release the lock and block. (select releases its several locks
//      itself and calls wait_until; an untimed channel operation calls
//      park_holding, see "Held parks" below.)
//   2. A waker, under the primitive's lock, takes an entry off the queue and
//      calls waiter::try_claim(). Only if that returns true may it complete the
//      operation for that waiter (copy a value into its slot, grant it the
//      lock...) and, after releasing the lock, call waiter::wake(). If it
//      returns false, the waiter was already claimed by someone else (another
//      case of a select, or its own deadline) and the waker moves on.
//   3. A waiter that returns from park_until with false timed out: nobody
//      claimed it, so it must re-lock and unlink its entries itself.
//
// A wake may therefore come before the parked fiber has switched out: the
// lock is released while the fiber still runs, so a waker on another worker
// can claim and wake it at once (a lock held across a switch through the
// scheduler would make that waker spin for the whole switch). The waiter's
// state word settles who makes the fiber runnable, with one exchange on each
// side:
//
//   state   parking (initial): the fiber runs or is switching out;
//           parked: its context is saved, it waits for a waker;
//           woken: a waker has been (it may have found the fiber parking).
//   W. wake():      first waits a moment (a bounded spin) while the state
//                   is parking: a switch-out takes a few hundred ns, and a
//                   fiber the waker readies goes into the waker's runnext,
//                   which keeps a chain of wakes on one processor (the lock
//                   protected this placement before; a fanout whose woken
//                   receivers stayed on their own processors contended for
//                   its channel from both). Then prev := exchange(state,
//                   woken). If prev == parked, the waker readies the fiber;
//                   if still parking (a parker delayed by the OS), it leaves
//                   that to the parker's worker, and touches nothing more.
//   P. the parker:  if state is already woken before it switches out, it
//                   does not switch at all. Otherwise, once the fiber has
//                   switched out, its worker (in the after_switch step)
//                   runs park_then's step, arms the deadline's timer, then
//                   prev := exchange(state, parked): its last touch of the
//                   park. If prev == woken, the worker readies the fiber
//                   itself (into its own runnext: the fiber resumes where it
//                   parked).
//   Exactly one side sees the other's value, so the fiber is readied exactly
//   once, and only after its context is saved and its park is complete: a
//   deadline's timer is a waker like any other (it claims, then wakes), so
//   it cannot resume the fiber while its worker still runs the after_switch
//   step (park.cpp, finish_park). Both exchanges are acq_rel:
//   the waker's writes (W2 of chan_core.cpp: the value, the status) and the
//   saved context are visible to whoever runs the fiber next.
//   From a plain thread: the thread watches the word for up to 10 us, then
//   sleeps on it with a futex until it reads woken; wake() stores woken and
//   wakes the futex.
//
// Held parks. An untimed single channel operation is found by exactly one
// waker, which holds the channel's lock (or by close(), which holds it too).
// Such a fiber parks with park_holding: it switches out still holding the
// lock, and its worker releases the lock once the fiber's context is saved.
// A waker that takes the lock and finds the waiter can then only find it
// parked, so neither side needs the state word: the waker readies the
// fiber at once, and the parker's worker settles nothing. That saves three
// locked operations per park and wake (the claim's compare-exchange and the
// two exchanges), about a sixth of an idle_cpu round trip's. A waker on
// another processor may wait on the lock for the switch (tens of ns, a
// direct switch); no fiber of the parker's processor can, since the worker
// releases it before the next fiber continues.
//
// Hazard: once wake() has exchanged the state the waiter may be destroyed at
// any moment (its owner returns from park); wake() reads what it needs first.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "context/switch.hpp"
#include "sched/spinlock.hpp"

namespace spindle::detail {

class waiter {
 public:
  // waiter: binds to the caller, the running fiber or this plain thread. A
  // waiter serves one park: make a new one for every wait.
  waiter() noexcept;
  waiter(const waiter&) = delete;
  waiter& operator=(const waiter&) = delete;

  // try_claim: the right to complete this waiter's operation and wake it.
  // True for exactly one caller per park. Call under the primitive's lock.
  bool try_claim() noexcept {
    if (claim_.load(std::memory_order_relaxed) == held) return true;  // found under its lock
    std::uint32_t expected = unclaimed;
    return claim_.compare_exchange_strong(expected, claimed, std::memory_order_acq_rel);
  }
  // park: releases `lock` (held on entry, not re-acquired) and blocks until
  // wake(). Blocks the fiber, or the plain thread.
  void park(spinlock_ref lock) noexcept {
    lock.unlock();
    wait_until(std::chrono::steady_clock::time_point::max());
  }
  // park_holding: as park, for a waiter that only wakers holding `lock` can
  // find, and that has no deadline (an untimed single channel operation).
  // A fiber keeps `lock` until it has switched out; its worker releases it
  // then, in the after-switch step (Go's park_m with its unlockf). So a
  // waker that finds this waiter under `lock` finds the fiber parked: its
  // claim needs no compare-exchange, and wake() readies the fiber with no
  // exchange of the state word on either side (see "Held parks" above).
  // A plain thread parks as with park.
  void park_holding(spinlock_ref lock) noexcept;
  // park_until: as park, but gives up at `deadline` if nobody has claimed the
  // waiter by then. Returns true when woken, false on timeout.
  bool park_until(spinlock_ref lock, std::chrono::steady_clock::time_point deadline) noexcept {
    lock.unlock();
    return wait_until(deadline);
  }
  // wait_until: as park_until for a caller that has already released every
  // lock under which wakers could find this waiter. A fiber's untimed wait
  // switches out right here, inline: see switch_out in switch.hpp.
  bool wait_until(std::chrono::steady_clock::time_point deadline) noexcept {
    if (fiber_ == nullptr || deadline != std::chrono::steady_clock::time_point::max()) {
      return wait_until_slow(deadline);
    }
    if (state_.load(std::memory_order_acquire) != woken) switch_out(settle_after_switch, this);
    return true;
  }
  // park_then: blocks until wake(), like park, but instead of releasing a
  // lock it calls then(arg) once the caller has blocked: from a fiber, after
  // it switched out (on its worker); from a thread, before it sleeps.
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
  bool wait_until_slow(std::chrono::steady_clock::time_point deadline) noexcept;
  static void settle_after_switch(worker& w, fiber* f, void* self);
  static void release_after_switch(worker& w, fiber* f, void* lock_word);
  static void finish_park(worker& w, fiber* f, void* record);
  bool block_fiber(void (*then)(void*), void* arg,
                   std::chrono::steady_clock::time_point deadline) noexcept;
  bool spin_until_woken(std::chrono::steady_clock::time_point deadline) const noexcept;
  bool block_thread_until(std::chrono::steady_clock::time_point deadline) noexcept;
  // settle: step P after the switch; true when the fiber was woken already
  // and the caller must ready it.
  bool settle() noexcept { return state_.exchange(parked, std::memory_order_acq_rel) == woken; }

  // held: a fiber parked by park_holding; only a waker holding its lock can
  // find it, so it is never claimed twice and never found still parking.
  enum : std::uint32_t { unclaimed = 0, claimed = 1, held = 2 };
  enum : std::uint32_t { parking = 0, parked = 1, woken = 2 };
  fiber* fiber_;
  std::atomic<std::uint32_t> claim_{unclaimed};
  std::atomic<std::uint32_t> state_{parking};  // see "state" above; the futex word of a thread
};

}  // namespace spindle::detail
