// lib/sched/park.cpp: waiter; see park.hpp.
//
// park_until from a fiber registers a timer, but only once the fiber has
// switched out (in the after_switch action, before the primitive's lock is
// released): a timer that fired earlier could otherwise ready a fiber whose
// context is not saved yet. The order inside the action matters too: the
// timer goes in first, then the lock is released; after the release a waker
// may resume the fiber, which then cancels the timer, so the timer must
// already be armed by then.
#include "sched/park.hpp"

#include <time.h>

#include "io/event_loop.hpp"
#include "os/futex.hpp"
#include "sched/scheduler.hpp"

namespace spindle::detail {
namespace {

void release_lock_after_switch(worker&, fiber*, void* lock_word) {
  spinlock_ref(*static_cast<std::atomic<std::uint32_t>*>(lock_word)).unlock();
}

// timed_park: a parked fiber's deadline, on the fiber's stack.
struct timed_park {
  timer_entry entry;  // first member: fire() gets &entry
  waiter* parked;
  std::atomic<std::uint32_t>* lock_word;
  bool timed_out = false;
};

void fire_timed_park(timer_entry* e) noexcept {
  auto* park = reinterpret_cast<timed_park*>(e);
  if (park->parked->try_claim()) {
    park->timed_out = true;
    park->parked->wake();
  }
}

void arm_then_release_after_switch(worker&, fiber*, void* arg) {
  auto* park = static_cast<timed_park*>(arg);
  event_loop::get().add_timer(&park->entry);
  spinlock_ref(*park->lock_word).unlock();
}

std::int64_t to_ns(std::chrono::steady_clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
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

bool waiter::park_until(spinlock_ref lock, std::chrono::steady_clock::time_point deadline) noexcept {
  if (deadline == std::chrono::steady_clock::time_point::max()) {
    park(lock);
    return true;
  }
  if (deadline <= std::chrono::steady_clock::now() && try_claim()) {
    lock.unlock();
    return false;
  }
  if (fiber_ != nullptr) {
    timed_park park_record;
    park_record.entry.deadline_ns = to_ns(deadline);
    park_record.entry.fire = fire_timed_park;
    park_record.parked = this;
    park_record.lock_word = &lock.word();
    scheduler::get().park(arm_then_release_after_switch, &park_record);
    event_loop::get().cancel_timer(&park_record.entry);
    return !park_record.timed_out;
  }
  lock.unlock();
  for (;;) {
    if (woken_.load(std::memory_order_acquire) != 0) return true;
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= left.zero()) {
      if (try_claim()) return false;
      while (woken_.load(std::memory_order_acquire) == 0) futex_wait(woken_, 0);
      return true;
    }
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(left);
    const timespec relative{static_cast<time_t>(seconds.count()),
                            static_cast<long>(std::chrono::nanoseconds(left - seconds).count())};
    futex_wait(woken_, 0, &relative);
  }
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
