// lib/sync/semaphore.cpp: spindle::semaphore.
//
// permits_ and the queue sit under one spinlock. release() hands permits to
// queued waiters first (granted under the lock, woken after it), and only
// the rest go to permits_; so a permit never goes to a newcomer while an
// earlier waiter sleeps, and a woken waiter never has to retry.
#include <mutex>

#include "spindle/sync.hpp"
#include "sync/wait_list.hpp"

namespace spindle {

void semaphore::acquire() { acquire_until(detail::no_deadline); }

bool semaphore::try_acquire() noexcept {
  detail::primitive_lock_ref lock(lock_);
  std::lock_guard guard(lock);
  if (permits_ == 0) return false;
  --permits_;
  return true;
}

bool semaphore::acquire_until(detail::time_point deadline) {
  detail::primitive_lock_ref lock(lock_);
  lock.lock();
  if (permits_ > 0) {
    --permits_;
    lock.unlock();
    return true;
  }
  detail::wait_node self;
  detail::push_back(waiters_, self);
  if (self.parked.park_until(lock, deadline)) return true;
  std::lock_guard guard(lock);
  detail::unlink(waiters_, self);
  return false;
}

void semaphore::release(std::size_t n) noexcept {
  detail::wake_list woken;
  {
    detail::primitive_lock_ref lock(lock_);
    std::lock_guard guard(lock);
    for (; n > 0; --n) {
      detail::wait_node* w = detail::pop_claimed(waiters_);
      if (w == nullptr) break;
      w->granted = true;
      woken.append(*w);
    }
    permits_ += n;
  }
  woken.wake_all();
}

}  // namespace spindle
