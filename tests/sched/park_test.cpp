// tests/sched/park_test.cpp: waiter::park_then never resumes a fiber before then() returned.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <spindle/spindle.hpp>
#include <thread>

#include "sched/park.hpp"

using namespace std::chrono_literals;

namespace {

struct then_record {
  std::atomic<bool> done{false};
  spindle::detail::waiter* parked = nullptr;  // for waking_then
};

// slow_then: an after-park step that is still running when the deadline
// passes (a worker preempted by the OS inside it looks the same).
void slow_then(void* arg) {
  std::this_thread::sleep_for(20ms);
  static_cast<then_record*>(arg)->done.store(true, std::memory_order_release);
}

// waking_then: an after-park step during which a waker on another thread
// claims and wakes the parked fiber (as a sender would once the channel
// lock is released), then one that takes long to return.
void waking_then(void* arg) {
  auto* record = static_cast<then_record*>(arg);
  std::thread waker([record] {
    if (record->parked->try_claim()) record->parked->wake();
  });
  waker.join();
  slow_then(arg);
}

}  // namespace

// Found by tests/fuzz/chan_fuzz (ASan: a null `then` read from a dead park
// record). The timer used to be armed before `then` ran, so a deadline that
// passed meanwhile resumed the fiber on another worker while its old worker
// was still about to call `then`: it read the park record from a frame that
// no longer existed, and released the primitive's lock after the fiber had
// moved on (for sleep_for, a lock word on the fiber's stack: a write into a
// live frame). Now the timer is armed after `then`, and a timer that fires
// while the worker is still in the after-switch step finds the waiter's
// state `parking` and leaves the fiber to that worker. On one processor
// nobody else can resume the fiber, so only the run with all processors
// (where the monitor hands a processor stuck in `then` to another thread,
// which fires its due timers) could fail.
TEST_CASE("park_then: a deadline never resumes the fiber before its then() returned") {
  bool woken = true, then_finished_first = false;
  spindle::go([&] {
    then_record record;
    spindle::detail::waiter self;
    woken = self.park_then(slow_then, &record, std::chrono::steady_clock::now() + 1ms);
    then_finished_first = record.done.load(std::memory_order_acquire);
  }).join();
  CHECK_FALSE(woken);
  CHECK(then_finished_first);
}

// A waker that claims and wakes the fiber while its worker still runs the
// after-switch step must not resume it there and then: a fiber readied into
// the global queue (by a plain thread) would start on another worker while
// this one is still inside `then`. The state word leaves the readying to
// the parker's worker, after `then`.
TEST_CASE("park_then: a waker during then() does not resume the fiber before then() returned") {
  bool woken = false, then_finished_first = false;
  spindle::go([&] {
    then_record record;
    spindle::detail::waiter self;
    record.parked = &self;
    woken = self.park_then(waking_then, &record, std::chrono::steady_clock::now() + 10s);
    then_finished_first = record.done.load(std::memory_order_acquire);
  }).join();
  CHECK(woken);
  CHECK(then_finished_first);
}
