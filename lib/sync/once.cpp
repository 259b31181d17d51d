// lib/sync/once.cpp: spindle::once.
//
// state_ goes idle -> running -> done (or back to idle if the function
// threw), always under lock_. Callers that find it running queue and park;
// finish() wakes them all, and each looks at the state again: done returns,
// idle (the runner threw) lets the first of them run its own function. The
// done state is published with release and read with acquire on the fast
// path, so the function's effects are visible to every caller that skips it.
#include <mutex>

#include "spindle/sync.hpp"
#include "sync/wait_list.hpp"

namespace spindle {

bool once::begin() {
  detail::primitive_lock_ref lock(lock_);
  for (;;) {
    lock.lock();
    switch (state_.load(std::memory_order_relaxed)) {
      case done_state:
        lock.unlock();
        return false;
      case idle_state:
        state_.store(running_state, std::memory_order_relaxed);
        lock.unlock();
        return true;
      default: {
        detail::wait_node self;
        detail::push_back(waiters_, self);
        self.parked.park(lock);
      }
    }
  }
}

void once::finish(bool succeeded) noexcept {
  detail::wake_list woken;
  {
    detail::primitive_lock_ref lock(lock_);
    std::lock_guard guard(lock);
    state_.store(succeeded ? done_state : idle_state, std::memory_order_release);
    while (detail::wait_node* n = detail::pop_claimed(waiters_)) woken.append(*n);
  }
  woken.wake_all();
}

}  // namespace spindle
