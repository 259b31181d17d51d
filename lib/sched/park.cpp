// lib/sched/park.cpp: waiter; see park.hpp.
#include "sched/park.hpp"

#include "os/futex.hpp"
#include "sched/scheduler.hpp"

namespace spindle::detail {
namespace {

void release_lock_after_switch(worker&, fiber*, void* lock_word) {
  spinlock_ref(*static_cast<std::atomic<std::uint32_t>*>(lock_word)).unlock();
}

}  // namespace

waiter::waiter() noexcept : fiber_(scheduler::running_fiber()) {}

void waiter::park(spinlock_ref lock) noexcept {
  if (fiber_ != nullptr) {
    scheduler::get().park(release_lock_after_switch, &lock.word());
    return;
  }
  lock.unlock();
  while (woken_.load(std::memory_order_acquire) == 0) futex_wait(woken_, 0);
}

void waiter::wake() noexcept {
  if (fiber* f = fiber_) {
    scheduler::get().ready(f, true);
    return;
  }
  woken_.store(1, std::memory_order_release);
  futex_wake(woken_, 1);
}

}  // namespace spindle::detail
