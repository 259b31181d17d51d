// lib/sched/park.cpp: waiter; see park.hpp.
//
// Every park goes through park_then. From a fiber, the deadline's timer is
// armed only once the fiber has switched out (in the after_switch action):
// a timer that fired earlier could otherwise ready a fiber whose context is
// not saved yet. Inside the action:
//   1. `then` runs first (releasing the primitive's lock, or submitting an
//      I/O request). Nothing may resume the fiber before it returns: a timer
//      armed earlier could fire meanwhile and resume the fiber on another
//      worker while this one is still about to call `then`, which would read
//      the park record from a dead frame and release a lock the fiber has
//      moved past (tests/sched/park_test.cpp; found by tests/fuzz).
//   2. The timer is armed. A waker may already have resumed the fiber (it
//      can claim it once `then` released the lock), so the record must stay
//      alive: the fiber waits in park_then while `arming` is set.
//   3. `arming` is cleared (release), the action's last touch of the record;
//      the fiber then cancels the timer and returns.
#include "sched/park.hpp"

#include <sched.h>
#include <time.h>

#include <atomic>

#include "io/event_loop.hpp"
#include "os/futex.hpp"
#include "sched/scheduler.hpp"

namespace spindle::detail {
namespace {

using steady = std::chrono::steady_clock;

// timed_park: a parked fiber's deadline and after-park step, on its stack.
struct timed_park {
  timer_entry entry;  // first member: fire() gets &entry
  waiter* parked;
  void (*then)(void*);
  void* then_arg;
  bool timed_out = false;
  std::atomic<bool> arming{true};  // the after_switch action still uses this record
};

void fire_timed_park(timer_entry* e) noexcept {
  auto* park = reinterpret_cast<timed_park*>(e);
  if (park->parked->try_claim()) {
    park->timed_out = true;
    park->parked->wake();
  }
}

void then_arm_after_switch(worker&, fiber*, void* arg) {
  auto* park = static_cast<timed_park*>(arg);
  park->then(park->then_arg);
  if (park->entry.deadline_ns != INT64_MAX) event_loop::current().add_timer(&park->entry);
  park->arming.store(false, std::memory_order_release);
}

// wait_until_armed: a fiber resumed by a waker right after `then` waits for
// its old worker to finish step 2 (a few instructions, unless the OS
// preempted that worker).
void wait_until_armed(const timed_park& park) noexcept {
  for (int spins = 0; park.arming.load(std::memory_order_acquire); ++spins) {
    if (spins < 64) {
      cpu_relax();
    } else {
      sched_yield();
    }
  }
}

void unlock_word(void* lock_word) {
  spinlock_ref(*static_cast<std::atomic<std::uint32_t>*>(lock_word)).unlock();
}

std::int64_t to_ns(steady::time_point t) noexcept {
  if (t == steady::time_point::max()) return INT64_MAX;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

waiter::waiter() noexcept : fiber_(scheduler::running_fiber()) {}

void waiter::park(spinlock_ref lock) noexcept { park_then(unlock_word, &lock.word()); }

bool waiter::park_until(spinlock_ref lock, steady::time_point deadline) noexcept {
  return park_then(unlock_word, &lock.word(), deadline);
}

bool waiter::park_then(void (*then)(void*), void* arg, steady::time_point deadline) noexcept {
  if (deadline != steady::time_point::max() && deadline <= steady::now() && try_claim()) {
    then(arg);
    return false;
  }
  if (fiber_ == nullptr) {
    then(arg);
    return block_thread_until(deadline);
  }
  timed_park park_record;
  park_record.entry.deadline_ns = to_ns(deadline);
  park_record.entry.fire = fire_timed_park;
  park_record.parked = this;
  park_record.then = then;
  park_record.then_arg = arg;
  scheduler::get().park(then_arm_after_switch, &park_record);
  wait_until_armed(park_record);
  if (park_record.entry.deadline_ns != INT64_MAX) event_loop::cancel_timer(&park_record.entry);
  return !park_record.timed_out;
}

bool waiter::block_thread_until(steady::time_point deadline) noexcept {
  for (;;) {
    if (woken_.load(std::memory_order_acquire) != 0) return true;
    if (deadline == steady::time_point::max()) {
      futex_wait(woken_, 0);
      continue;
    }
    const auto left = deadline - steady::now();
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
