// lib/sched/park.cpp: waiter; the protocol is in park.hpp.
//
// A fiber's park_holding (an untimed channel operation) switches out with
// the primitive's lock held and only releases it after the switch
// (release_after_switch): no state word. A fiber's untimed wait_until
// (park(lock)), inline in park.hpp, only settles the state word after the
// switch (settle_after_switch). Every other fiber park goes through
// block_fiber, whose after-switch step (finish_park, run by the worker once
// the fiber's context is saved) does, in this order:
//   1. run the park_then step `then` (submitting an I/O request, say), if any;
//   2. arm the deadline's timer, if any, on this worker's loop;
//   3. settle the state word (step P of park.hpp), and ready the fiber if a
//      waker (or the timer) has been meanwhile.
// The fiber cannot run again before step 3: a waker that comes during steps
// 1-2, or the timer firing between 2 and 3 (on a thread that took over this
// processor), finds the state `parking` and leaves the fiber to this worker.
// So no one touches the park record, runs `then` or arms the timer after the
// fiber may have resumed, and a timer never resumes a fiber whose park is
// not complete (the bug tests/fuzz found when the timer was armed before
// `then` and could ready the fiber at once: tests/sched/park_test.cpp;
// tests/model/timed_park_model.cpp checks every interleaving).
// The timer goes in before step 3 because the resumed fiber cancels it: it
// must be on the wheel (e->home set) by then. Nothing of the record is
// touched after the settling exchange: from then on the fiber may resume,
// return and free it. (The first fix, an `arming` flag that the resumed
// fiber waited out, is not needed: no one readies the fiber before step 3.)
#include "sched/park.hpp"

#include <time.h>

#include <algorithm>

#include "io/event_loop.hpp"
#include "os/futex.hpp"
#include "sched/scheduler.hpp"

namespace spindle::detail {
namespace {

using steady = std::chrono::steady_clock;

// settle_spins: how many pauses (each some tens of ns) wake() waits for a
// fiber that is switching out to finish (see park.hpp, step W).
constexpr int settle_spins = 16;

// thread_spin_ns: how long a plain thread watches its waiter before it
// sleeps on the futex. A thread that joins a short fiber, or waits for a
// reply a fiber sends within microseconds, is then woken without a sleep:
// a futex sleep and wake-up cost the thread tens of microseconds of CPU
// time and latency on a virtual machine (an idle CPU's exit), more than a
// failed spin costs. It spins only while a CPU is spare (fewer processors
// busy than CPUs): otherwise it would slow the very fibers it waits for.
constexpr std::int64_t thread_spin_ns = 10'000;

// timed_park: a parked fiber's deadline and after-park step, on its stack.
struct timed_park {
  timer_entry entry;  // first member: fire() gets &entry
  waiter* parked;
  void (*then)(void*);
  void* then_arg;
  bool timed_out = false;
};

void fire_timed_park(timer_entry* e) noexcept {
  auto* park = reinterpret_cast<timed_park*>(e);
  if (park->parked->try_claim()) {
    park->timed_out = true;
    park->parked->wake();
  }
}

std::int64_t to_ns(steady::time_point t) noexcept {
  if (t == steady::time_point::max()) return INT64_MAX;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

bool passed(steady::time_point deadline) noexcept {
  return deadline != steady::time_point::max() && deadline <= steady::now();
}

}  // namespace

waiter::waiter() noexcept : fiber_(scheduler::running_fiber()) {}

// wait_until_slow: a plain thread's wait, or a fiber's timed one.
bool waiter::wait_until_slow(steady::time_point deadline) noexcept {
  if (passed(deadline) && try_claim()) return false;
  if (fiber_ == nullptr) return block_thread_until(deadline);
  if (state_.load(std::memory_order_acquire) == woken) return true;  // no need to switch out
  return block_fiber(nullptr, nullptr, deadline);
}

bool waiter::park_then(void (*then)(void*), void* arg, steady::time_point deadline) noexcept {
  if (passed(deadline) && try_claim()) {
    then(arg);
    return false;
  }
  if (fiber_ == nullptr) {
    then(arg);
    return block_thread_until(deadline);
  }
  return block_fiber(then, arg, deadline);
}

void waiter::settle_after_switch(worker&, fiber* f, void* self) {
  if (static_cast<waiter*>(self)->settle()) scheduler::get().ready(f, true);
}

void waiter::park_holding(spinlock_ref lock) noexcept {
  if (fiber_ == nullptr) {
    park(lock);
    return;
  }
  claim_.store(held, std::memory_order_relaxed);  // under the lock: no waker reads it yet
  switch_out(release_after_switch, &lock.word());
}

// release_after_switch: a held park's after-switch step; the fiber's context
// is saved, and the release makes it visible to the waker that takes the lock.
void waiter::release_after_switch(worker&, fiber*, void* lock_word) {
  spinlock_ref(*static_cast<std::atomic<std::uint32_t>*>(lock_word)).unlock();
}

// finish_park: on the worker, in the scheduler. A worker that still holds
// its processor owns that processor's loop; one that lost it (a handoff)
// arms the timer like a plain thread.
void waiter::finish_park(worker& w, fiber* f, void* record) {
  auto* park = static_cast<timed_park*>(record);
  if (park->then != nullptr) park->then(park->then_arg);
  if (park->entry.deadline_ns != INT64_MAX) event_loop::add_timer_after_switch(w, &park->entry);
  if (park->parked->settle()) scheduler::get().ready(f, true);
}

bool waiter::block_fiber(void (*then)(void*), void* arg, steady::time_point deadline) noexcept {
  timed_park park_record;
  park_record.entry.deadline_ns = to_ns(deadline);
  park_record.entry.fire = fire_timed_park;
  park_record.parked = this;
  park_record.then = then;
  park_record.then_arg = arg;
  switch_out(finish_park, &park_record);
  if (park_record.timed_out) {  // fired: unqueued already, fire() may still be returning
    event_loop::await_fired(&park_record.entry);
  } else if (park_record.entry.deadline_ns != INT64_MAX) {
    event_loop::cancel_timer(&park_record.entry);
  }
  return !park_record.timed_out;
}

// spin_until_woken: the bounded spin before a plain thread sleeps (never
// past its deadline); true if the waiter was woken meanwhile.
bool waiter::spin_until_woken(steady::time_point deadline) const noexcept {
  const scheduler* runtime = scheduler::started();
  if (runtime == nullptr || !runtime->has_spare_cpu()) return false;
  const std::int64_t give_up = std::min(steady_now_ns() + thread_spin_ns, to_ns(deadline));
  do {
    for (int i = 0; i < 32; ++i) {
      if (state_.load(std::memory_order_acquire) == woken) return true;
      cpu_relax();
    }
  } while (steady_now_ns() < give_up);
  return false;
}

bool waiter::block_thread_until(steady::time_point deadline) noexcept {
  if (spin_until_woken(deadline)) return true;
  for (;;) {
    if (state_.load(std::memory_order_acquire) == woken) return true;
    if (deadline == steady::time_point::max()) {
      futex_wait(state_, parking);
      continue;
    }
    const auto left = deadline - steady::now();
    if (left <= left.zero()) {
      if (try_claim()) return false;
      while (state_.load(std::memory_order_acquire) != woken) futex_wait(state_, parking);
      return true;
    }
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(left);
    const timespec relative{static_cast<time_t>(seconds.count()),
                            static_cast<long>(std::chrono::nanoseconds(left - seconds).count())};
    futex_wait(state_, parking, &relative);
  }
}

void waiter::wake() noexcept {
  if (fiber* f = fiber_) {
    if (claim_.load(std::memory_order_relaxed) == held) {  // parked: its worker released the lock
      scheduler::get().ready(f, true);
      return;
    }
    for (int spins = 0; spins < settle_spins && state_.load(std::memory_order_relaxed) == parking;
         ++spins) {
      cpu_relax();
    }
    if (state_.exchange(woken, std::memory_order_acq_rel) == parked) {
      scheduler::get().ready(f, true);
    }
    return;
  }
  state_.store(woken, std::memory_order_release);
  futex_wake(state_, 1);
}

}  // namespace spindle::detail
