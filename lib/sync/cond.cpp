// lib/sync/cond.cpp: spindle::cond, a condition variable for spindle::mutex.
//
// wait() queues its node under the cond's spinlock and releases the user's
// mutex while still holding that spinlock, then parks (releasing the
// spinlock). A notifier that changed the state under
// the mutex therefore finds the waiter queued: there is no window between
// "released the mutex" and "visible to notify" (the lost wake-up of a naive
// condition variable). Lock order: cond spinlock, then the mutex's internal
// lock; the mutex never takes a cond's lock.
#include <mutex>

#include "spindle/error.hpp"
#include "spindle/sync.hpp"
#include "sync/wait_list.hpp"

namespace spindle {

cond_status cond::wait_until_deadline(std::unique_lock<mutex>& user_lock,
                                      detail::time_point deadline) {
  if (!user_lock.owns_lock()) throw usage_error("cond::wait without holding the lock");
  detail::primitive_lock_ref lock(lock_);
  lock.lock();
  detail::wait_node self;
  detail::push_back(waiters_, self);
  user_lock.unlock();
  bool notified = self.parked.park_until(lock, deadline);
  if (!notified) {
    std::lock_guard guard(lock);
    detail::unlink(waiters_, self);
  }
  user_lock.lock();
  return notified ? cond_status::notified : cond_status::timeout;
}

void cond::wait(std::unique_lock<mutex>& user_lock) {
  wait_until_deadline(user_lock, detail::no_deadline);
}

void cond::notify_one() noexcept {
  detail::wait_node* n;
  {
    detail::primitive_lock_ref lock(lock_);
    std::lock_guard guard(lock);
    n = detail::pop_claimed(waiters_);
  }
  if (n) n->parked.wake();
}

void cond::notify_all() noexcept {
  detail::wake_list woken;
  {
    detail::primitive_lock_ref lock(lock_);
    std::lock_guard guard(lock);
    while (detail::wait_node* n = detail::pop_claimed(waiters_)) woken.append(*n);
  }
  woken.wake_all();
}

}  // namespace spindle
