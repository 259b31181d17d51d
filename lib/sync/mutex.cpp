// lib/sync/mutex.cpp: spindle::mutex, a parking lock that does not starve waiters.
//
// State (mutex::state_, one atomic word):
//   locked_bit   somebody owns the mutex;
//   waiters_bit  the wait queue may be non-empty, so unlock must take the
//                slow path (the fast path is a CAS from exactly locked_bit);
//   handoff_bit  handoff mode: unlock passes ownership to the queue's head
//                instead of waking it to compete; newcomers do not barge.
// waiters_bit and handoff_bit change only under lock_ (the queue's spinlock);
// locked_bit also changes by CAS on the fast paths.
//
// Protocol
//   lock (slow path), under lock_:
//     L1. if the mutex is free (and not in handoff mode), CAS locked_bit in: done;
//     L2. else CAS waiters_bit in (plus handoff_bit if this caller was woken
//         before and lost) from the very state seen in L1, so an unlock that
//         slipped in between makes the CAS fail and L1 run again: the unlock
//         either sees waiters_bit, or the locker sees the mutex free;
//     L3. queue at the back (at the front after losing once), park on lock_;
//     L4. woken with `granted`: the mutex is ours (handoff). Woken without:
//         compete again from L1.
//   unlock (slow path: waiters_bit or handoff_bit set), under lock_:
//     U1. pop the queue's head; in handoff mode mark it granted and keep
//         locked_bit set (ownership passes without ever being free);
//         otherwise clear locked_bit (the head will compete);
//     U2. if the queue is now empty, clear waiters_bit and handoff_bit;
//     U3. unlock lock_, then wake the head.
//   Why a waiter cannot starve: it competes at most once; losing puts it at
//   the front in handoff mode, and the next unlock hands it the mutex.
//   Go's sync.Mutex enters starvation mode after a waiter waited 1 ms; we
//   enter it after one lost race, which needs no clock and costs one extra
//   wake in the rare barging case.
#include <mutex>

#include "spindle/error.hpp"
#include "spindle/sync.hpp"
#include "sync/wait_list.hpp"

namespace spindle {

void mutex::lock_slow() {
  detail::primitive_lock_ref lock(lock_);
  for (bool lost_once = false;; lost_once = true) {
    lock.lock();
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    for (;;) {
      if ((s & (locked_bit | handoff_bit)) == 0) {
        if (state_.compare_exchange_weak(s, s | locked_bit, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
          lock.unlock();
          return;
        }
        continue;
      }
      std::uint32_t wanted = s | waiters_bit | (lost_once ? handoff_bit : 0);
      if (state_.compare_exchange_weak(s, wanted, std::memory_order_relaxed)) break;
    }
    detail::wait_node self;
    if (lost_once) {
      detail::push_front(waiters_, self);
    } else {
      detail::push_back(waiters_, self);
    }
    self.parked.park(lock);
    if (self.granted) return;
  }
}

void mutex::unlock_slow() {
  detail::primitive_lock_ref lock(lock_);
  detail::wait_node* next;
  {
    std::lock_guard guard(lock);
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    if ((s & locked_bit) == 0) throw usage_error("unlock of unlocked mutex");
    next = detail::pop_claimed(waiters_);
    bool hand_over = next != nullptr && (s & handoff_bit) != 0;
    std::uint32_t clear = hand_over ? 0 : locked_bit;
    if (waiters_.head == nullptr) clear |= waiters_bit | handoff_bit;
    state_.fetch_and(~clear, std::memory_order_release);
    if (next) next->granted = hand_over;
  }
  if (next) next->parked.wake();
}

}  // namespace spindle
