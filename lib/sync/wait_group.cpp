// lib/sync/wait_group.cpp: spindle::wait_group.
//
// The counter is an atomic updated without the lock; the lock guards only the
// wait queue. No lost wake-up: a waiter re-reads the counter under the lock
// before queueing, and whoever brings the counter to zero takes the lock
// after its decrement, so it either finds the waiter queued or the waiter
// finds zero. The decrement (acq_rel) and the waiter's load (acquire) carry
// the happens-before from every done() to the return of wait().
#include <mutex>

#include "spindle/error.hpp"
#include "spindle/sync.hpp"
#include "sync/wait_list.hpp"

namespace spindle {

void wait_group::add(std::ptrdiff_t delta) {
  std::int64_t now = count_.fetch_add(delta, std::memory_order_acq_rel) + delta;
  if (now < 0) throw usage_error("negative wait_group counter");
  if (now > 0) return;
  detail::wake_list woken;
  {
    detail::spinlock_ref lock(lock_);
    std::lock_guard guard(lock);
    while (detail::wait_node* n = detail::pop_claimed(waiters_)) woken.append(*n);
  }
  woken.wake_all();
}

void wait_group::wait() { wait_until_deadline(detail::no_deadline); }

bool wait_group::wait_until_deadline(detail::time_point deadline) {
  if (count_.load(std::memory_order_acquire) == 0) return true;
  detail::spinlock_ref lock(lock_);
  lock.lock();
  if (count_.load(std::memory_order_acquire) == 0) {
    lock.unlock();
    return true;
  }
  detail::wait_node self;
  detail::push_back(waiters_, self);
  if (detail::park_node(self, lock, deadline)) return true;
  std::lock_guard guard(lock);
  detail::unlink(waiters_, self);
  return false;
}

}  // namespace spindle
