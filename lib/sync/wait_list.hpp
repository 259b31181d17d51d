// lib/sync/wait_list.hpp: parking on a sync primitive.
//
// Every primitive in lib/sync follows the park protocol of lib/sched/park.hpp
// with one shape:
//   1. Under the primitive's spinlock, a caller that must wait links a
//      wait_node (on its own stack) into a wait_queue and calls park(lock),
//      which releases the lock and blocks; a waker may find and wake the
//      node at once, even before the fiber has switched out (the waiter's
//      state word then has the fiber readied once it has, park.hpp).
//   2. A waker, under the same lock, pops nodes with pop_claimed(), which
//      returns only nodes whose waiter it could claim (a node past its
//      deadline is claimed by its owner and is skipped), records the outcome
//      in the node (`granted`: the lock, a permit... was handed over), and
//      calls wake() on it only after unlocking.
//   3. A timed wait whose park_until returns false (nobody claimed it) re-locks
//      and unlinks its node if a waker has not dropped it already.
// Handing ownership over in step 2 (rather than waking the waiter to retry)
// is what keeps waiters from starving; mutex.cpp explains its variant.
#pragma once

#include <cstdint>

#include "sched/park.hpp"
#include "sched/spinlock.hpp"
#include "spindle/detail/wait_queue.hpp"

namespace spindle::detail {

struct wait_node {
  waiter parked;
  wait_node* prev = nullptr;
  wait_node* next = nullptr;
  bool linked = false;     // in a queue; guarded by the primitive's lock
  bool granted = false;    // set by the waker before wake(): what was waited for is ours
  std::uint32_t kind = 0;  // primitive-specific (rw_mutex: reader or writer)
};

inline void push_back(wait_queue& q, wait_node& n) noexcept {
  n.prev = q.tail;
  n.next = nullptr;
  (q.tail ? q.tail->next : q.head) = &n;
  q.tail = &n;
  n.linked = true;
}

inline void push_front(wait_queue& q, wait_node& n) noexcept {
  n.prev = nullptr;
  n.next = q.head;
  (q.head ? q.head->prev : q.tail) = &n;
  q.head = &n;
  n.linked = true;
}

// unlink: removes n if it is still queued.
inline void unlink(wait_queue& q, wait_node& n) noexcept {
  if (!n.linked) return;
  (n.prev ? n.prev->next : q.head) = n.next;
  (n.next ? n.next->prev : q.tail) = n.prev;
  n.prev = n.next = nullptr;
  n.linked = false;
}

// pop_claimed: the first node whose waiter the caller could claim, unlinked;
// nodes claimed by their own deadline are dropped on the way. nullptr if none.
inline wait_node* pop_claimed(wait_queue& q) noexcept {
  while (wait_node* n = q.head) {
    unlink(q, *n);
    if (n->parked.try_claim()) return n;
  }
  return nullptr;
}

// wake_list: nodes a waker claimed under the lock, to wake in order once it
// has unlocked. Reads each link before waking (a woken node may vanish).
class wake_list {
 public:
  void append(wait_node& n) noexcept {
    n.next = nullptr;
    (tail_ ? tail_->next : head_) = &n;
    tail_ = &n;
  }
  void wake_all() noexcept {
    while (wait_node* n = head_) {
      head_ = n->next;
      n->parked.wake();
    }
    tail_ = nullptr;
  }

 private:
  wait_node* head_ = nullptr;
  wait_node* tail_ = nullptr;
};

}  // namespace spindle::detail
