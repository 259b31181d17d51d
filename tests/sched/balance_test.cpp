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

namespace {

constexpr std::int64_t ms = 1'000'000;

// contended_pass: feeds `w` a pass in which the processor's fibers switched
// 100 times and found a primitive's lock taken 50 times.
bool contended_pass(contention_watch& w, std::uint64_t& contended, std::uint64_t& switches,
                    std::int64_t now) {
  contended += 50;
  switches += 100;
  return w.observe(contended, switches, now);
}

bool quiet_pass(contention_watch& w, std::uint64_t contended, std::uint64_t& switches,
                std::int64_t now) {
  switches += 100'000;
  return w.observe(contended, switches, now);
}

}  // namespace

TEST_CASE("a processor is held only when its fibers contend") {
  contention_watch w;
  std::uint64_t contended = 0, switches = 0;
  CHECK_FALSE(quiet_pass(w, contended, switches, 1 * ms));
  CHECK(w.may_spread(1 * ms));
  // A few contended acquisitions among many switches are not contention.
  contended += 10;
  CHECK_FALSE(quiet_pass(w, contended, switches, 2 * ms));
  CHECK(w.may_spread(2 * ms));
  // Fewer than min_contended are not either, however few the switches.
  contended += contention_watch::min_contended - 1;
  switches += 1;
  CHECK_FALSE(w.observe(contended, switches, 3 * ms));
  CHECK(w.may_spread(3 * ms));

  CHECK(contended_pass(w, contended, switches, 4 * ms));
  CHECK_FALSE(w.may_spread(4 * ms));
  CHECK(w.hold_off_ns() == contention_watch::min_hold_off_ns);
  CHECK_FALSE(w.may_spread(4 * ms + contention_watch::min_hold_off_ns - 1));
  CHECK(w.may_spread(4 * ms + contention_watch::min_hold_off_ns));
}

TEST_CASE("the hold doubles while spreading brings contention back") {
  contention_watch w;
  std::uint64_t contended = 0, switches = 0;
  std::int64_t now = 1 * ms;
  std::int64_t expected = contention_watch::min_hold_off_ns;
  for (int round = 0; round < 12; ++round) {
    REQUIRE(contended_pass(w, contended, switches, now));
    CHECK(w.hold_off_ns() == expected);
    now += w.hold_off_ns();
    REQUIRE(w.may_spread(now));
    w.spread();  // the balancer tries again, and the fibers contend again
    expected = std::min(2 * expected, contention_watch::max_hold_off_ns);
  }
  CHECK(w.hold_off_ns() == contention_watch::max_hold_off_ns);
}

TEST_CASE("a spread without contention ends the doubling") {
  contention_watch w;
  std::uint64_t contended = 0, switches = 0;
  std::int64_t now = 1 * ms;
  for (int round = 0; round < 3; ++round) {
    REQUIRE(contended_pass(w, contended, switches, now));
    now += w.hold_off_ns();
    w.spread();
  }
  REQUIRE(w.hold_off_ns() == 4 * contention_watch::min_hold_off_ns);
  // This time the moved fibers did not contend: spreading paid.
  CHECK_FALSE(quiet_pass(w, contended, switches, now));
  CHECK(w.hold_off_ns() == 0);
  CHECK(w.may_spread(now));
  CHECK(contended_pass(w, contended, switches, now + 1 * ms));
  CHECK(w.hold_off_ns() == contention_watch::min_hold_off_ns);
}

TEST_CASE("a quiet pass without a spread keeps the doubling") {
  contention_watch w;
  std::uint64_t contended = 0, switches = 0;
  REQUIRE(contended_pass(w, contended, switches, 1 * ms));
  // Held: nothing was moved, so a quiet pass says nothing about spreading.
  CHECK_FALSE(quiet_pass(w, contended, switches, 2 * ms));
  CHECK(contended_pass(w, contended, switches, 20 * ms));
  CHECK(w.hold_off_ns() == 2 * contention_watch::min_hold_off_ns);
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
