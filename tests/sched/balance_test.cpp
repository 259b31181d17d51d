// tests/sched/balance_test.cpp: when the balancer spreads fibers and when it
// holds them in place (lib/sched/contention_watch.hpp).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <spindle/spindle.hpp>
#include <thread>
#include <vector>

#include "sched/contention_watch.hpp"

using namespace std::chrono_literals;
using spindle::detail::contention_watch;
using spindle::detail::long_backlog;

namespace {

constexpr std::int64_t ms = 1'000'000;

// pass: feeds `w` a balancer pass at `now` in which the processor's fibers
// waited `waited` for primitive locks.
bool pass(contention_watch& w, std::int64_t& total_wait, std::int64_t waited, std::int64_t now) {
  total_wait += waited;
  return w.observe(total_wait, now);
}

}  // namespace

TEST_CASE("a processor is held only when its fibers wait for locks") {
  contention_watch w;
  std::int64_t wait = 0;
  CHECK_FALSE(pass(w, wait, 0, 100 * ms));
  CHECK(w.may_spread(100 * ms));
  // Waiting a few percent of the time is the price of parallel work.
  CHECK_FALSE(pass(w, wait, ms / 20, 101 * ms));
  CHECK_FALSE(pass(w, wait, 9 * ms / 100, 102 * ms));
  CHECK(w.may_spread(102 * ms));
  // A tenth of the time is not.
  CHECK(pass(w, wait, ms / 10, 103 * ms));
  CHECK_FALSE(w.may_spread(103 * ms));
  CHECK(w.hold_off_ns() == contention_watch::min_hold_off_ns);
  CHECK_FALSE(w.may_spread(103 * ms + contention_watch::min_hold_off_ns - 1));
  CHECK(w.may_spread(103 * ms + contention_watch::min_hold_off_ns));
}

TEST_CASE("the share is of the time since the last pass") {
  contention_watch w;
  std::int64_t wait = 0;
  CHECK_FALSE(pass(w, wait, 0, 100 * ms));
  // 1 ms of waiting over a 10 ms pass is a tenth; over 11 ms it is not.
  CHECK_FALSE(pass(w, wait, 1 * ms, 111 * ms));
  CHECK(pass(w, wait, 1 * ms, 121 * ms));
}

TEST_CASE("the hold doubles while spreading brings contention back") {
  contention_watch w;
  std::int64_t wait = 0;
  std::int64_t now = 100 * ms;
  pass(w, wait, 0, now);
  std::int64_t expected = contention_watch::min_hold_off_ns;
  for (int round = 0; round < 12; ++round) {
    now += 1 * ms;
    REQUIRE(pass(w, wait, ms / 2, now));
    CHECK(w.hold_off_ns() == expected);
    now += w.hold_off_ns();
    REQUIRE(w.may_spread(now));
    REQUIRE_FALSE(pass(w, wait, 0, now));  // a quiet pass while nothing moved
    w.spread();                            // the balancer tries again...
    expected = std::min(2 * expected, contention_watch::max_hold_off_ns);
  }
  CHECK(w.hold_off_ns() == contention_watch::max_hold_off_ns);
}

TEST_CASE("a spread without contention ends the doubling") {
  contention_watch w;
  std::int64_t wait = 0;
  std::int64_t now = 100 * ms;
  pass(w, wait, 0, now);
  for (int round = 0; round < 3; ++round) {
    now += 1 * ms;
    REQUIRE(pass(w, wait, ms / 2, now));
    now += w.hold_off_ns();
    REQUIRE_FALSE(pass(w, wait, 0, now));
    w.spread();
  }
  REQUIRE(w.hold_off_ns() == 4 * contention_watch::min_hold_off_ns);
  // This time the moved fibers did not contend: spreading paid.
  now += 1 * ms;
  CHECK_FALSE(pass(w, wait, 0, now));
  CHECK(w.hold_off_ns() == 0);
  CHECK(w.may_spread(now));
  now += 1 * ms;
  CHECK(pass(w, wait, ms / 2, now));
  CHECK(w.hold_off_ns() == contention_watch::min_hold_off_ns);
}

TEST_CASE("a quiet pass without a spread keeps the doubling") {
  contention_watch w;
  std::int64_t wait = 0;
  pass(w, wait, 0, 100 * ms);
  REQUIRE(pass(w, wait, ms / 2, 101 * ms));
  // Held: nothing was moved, so a quiet pass says nothing about spreading.
  CHECK_FALSE(pass(w, wait, 0, 102 * ms));
  CHECK(pass(w, wait, ms / 2, 103 * ms));
  CHECK(w.hold_off_ns() == 2 * contention_watch::min_hold_off_ns);
}

TEST_CASE("a hold never keeps a long backlog in place") {
  // A fanout's queue: 1,000 fibers at 50 ns a switch (20,000 switches in a
  // 1 ms pass) is 50 us of work.
  CHECK_FALSE(long_backlog(1'000, 20'000, 1 * ms));
  // A burst of computations: 100 fibers at 200 us a switch is 20 ms.
  CHECK(long_backlog(100, 5, 1 * ms));
  // About the limit (1 ms of queued work).
  CHECK(long_backlog(10, 10, 1 * ms));
  CHECK_FALSE(long_backlog(9, 10, 1 * ms));
  // Nothing queued is no backlog; a processor that did not switch at all
  // is held by its running fiber, and whatever is queued waits on it.
  CHECK_FALSE(long_backlog(0, 0, 1 * ms));
  CHECK(long_backlog(1, 0, 1 * ms));
}

TEST_CASE("fibers hammering one channel from every processor get held") {
  if (spindle::current_options().procs < 2) return;
  // Fibers spawned from a plain thread go to the global queue, so every
  // processor takes some; each keeps taking the channel's lock. The monitor
  // must notice the contention and hold the processors; the deadline only
  // bounds a failing run.
  const std::uint64_t holds_before = spindle::runtime_stats().contention_holds;
  spindle::chan<int> shared(1);
  std::atomic<bool> stop{false};
  std::vector<spindle::handle<void>> fibers;
  for (int i = 0; i < 64; ++i) {
    fibers.push_back(spindle::go([shared, &stop]() mutable {
      while (!stop.load(std::memory_order_relaxed)) {
        if (!shared.try_send(1)) shared.try_recv();
        spindle::yield();
      }
    }));
  }
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (spindle::runtime_stats().contention_holds == holds_before &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);  // polling a counter with a deadline, not synchronising
  }
  stop = true;
  for (auto& f : fibers) f.join();
  CHECK(spindle::runtime_stats().contention_holds > holds_before);
}
