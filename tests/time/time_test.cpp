// tests/time/time_test.cpp: sleep, timer, ticker, after, and the timer
// wheel under the event loops.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <random>
#include <set>
#include <spindle/spindle.hpp>
#include <thread>
#include <vector>

#include "io/event_loop.hpp"
#include "scale.hpp"
#include "time/timer_wheel.hpp"
#include "wait.hpp"

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

template <class T>
bool ready_within(std::future<T>& f, std::chrono::seconds limit = 30s) {
  return f.wait_for(limit) == std::future_status::ready;
}

// recorded_timer: a raw heap entry that records the order it fired in.
struct recorded_timer : spindle::detail::timer_entry {
  int label = 0;
  std::vector<int>* order = nullptr;
  std::atomic<int>* remaining = nullptr;
  std::promise<void>* all_fired = nullptr;
};

void record_fire(spindle::detail::timer_entry* e) noexcept {
  auto* t = static_cast<recorded_timer*>(e);
  t->order->push_back(t->label);  // on loop 0 only: the test thread armed them all
  if (t->remaining->fetch_sub(1) == 1) t->all_fired->set_value();
}

}  // namespace

TEST_CASE("a timeout is rounded up, and one past the clock's range means no deadline") {
  using namespace std::chrono;
  using spindle::detail::deadline_after;
  using spindle::detail::no_deadline;
  CHECK(deadline_after(hours::max()) == no_deadline);
  CHECK(deadline_after(nanoseconds::max()) == no_deadline);
  CHECK(deadline_after(duration<std::uint64_t, std::milli>(UINT64_MAX)) == no_deadline);
  CHECK(deadline_after(duration<double>(1e30)) == no_deadline);
  CHECK(deadline_after(duration<std::int64_t, std::ratio<1, 3>>(INT64_MAX)) == no_deadline);
  // The steady clock spans about 292 years from its epoch (boot).
  CHECK(deadline_after(days(100'000)) != no_deadline);
  CHECK(deadline_after(days(200'000)) == no_deadline);
  CHECK(deadline_after(duration<std::int64_t, std::pico>(INT64_MAX)) != no_deadline);

  const auto before = steady::now();
  const auto five = deadline_after(milliseconds(5));
  const auto rounded = deadline_after(duration<std::int64_t, std::pico>(1'500));
  const auto past = deadline_after(-1s);
  const auto after = steady::now();
  CHECK(five >= before + 5ms);
  CHECK(five <= after + 5ms);
  CHECK(rounded >= before + 2ns);
  CHECK(rounded <= after + 2ns);
  CHECK(past >= before);
  CHECK(past <= after);
}

TEST_CASE("sleep_for never returns early, from a fiber and from a thread") {
  auto fiber_slept = spindle::go([] {
    const auto start = steady::now();
    spindle::sleep_for(20ms);
    return steady::now() - start;
  });
  CHECK(fiber_slept.join() >= 20ms);
  const auto start = steady::now();
  spindle::sleep_for(5ms);
  CHECK(steady::now() - start >= 5ms);
  spindle::sleep_for(-1s);  // returns at once
  spindle::go([] { spindle::sleep_until(steady::now() - 1s); }).join();
}

TEST_CASE("timers fire in deadline order, equal deadlines in the order they were set") {
  auto& loop = spindle::detail::event_loop::current();
  constexpr int count = 500;
  std::vector<recorded_timer> timers(count);
  std::vector<int> order;
  order.reserve(count);
  std::atomic<int> remaining{count};
  std::promise<void> all_fired;
  auto done = all_fired.get_future();
  std::mt19937 rng(42);
  const std::int64_t base = spindle::detail::steady_now_ns() + 20'000'000;
  std::vector<std::pair<std::int64_t, int>> expected;
  for (int i = 0; i < count; ++i) {
    recorded_timer& t = timers[static_cast<std::size_t>(i)];
    t.label = i;
    t.order = &order;
    t.remaining = &remaining;
    t.all_fired = &all_fired;
    t.fire = record_fire;
    t.deadline_ns =
        base + static_cast<std::int64_t>(rng() % 40) * 1'000'000;  // many equal deadlines
    expected.emplace_back(t.deadline_ns, i);
    loop.add_timer(&t);
  }
  REQUIRE(ready_within(done));
  // The last fire() is still running (it set the promise): cancel_timer waits
  // it out, as it must before any entry's memory goes.
  for (auto& t : timers) CHECK_FALSE(spindle::detail::event_loop::cancel_timer(&t));
  std::stable_sort(expected.begin(), expected.end(),
                   [](auto& a, auto& b) { return a.first < b.first; });
  std::vector<int> expected_order;
  for (auto& e : expected) expected_order.push_back(e.second);
  CHECK(order == expected_order);
}

TEST_CASE("a new earlier timer preempts a later one while the loop sleeps") {
  spindle::timer far(60s);
  spindle::detail::event_loop::handle_count();  // a round trip: the loops now sleep on `far`
  std::promise<steady::time_point> fired;
  auto when = fired.get_future();
  const auto start = steady::now();
  spindle::timer near(5ms, [&fired] { fired.set_value(steady::now()); });
  REQUIRE(ready_within(when, 20s));  // without preemption it would wait for `far`: 60 s
  CHECK(when.get() - start >= 5ms);
  CHECK(far.stop());
}

TEST_CASE("a stopped timer never fires; stop after firing returns false") {
  spindle::timer stopped(10ms);
  CHECK(stopped.stop());
  CHECK_FALSE(stopped.stop());
  spindle::timer fires(10ms);
  auto got = spindle::go([c = fires.channel()]() mutable { return c.recv().has_value(); });
  CHECK(got.join());
  CHECK_FALSE(fires.stop());
  spindle::sleep_for(30ms);  // well past the stopped timer's deadline
  CHECK_FALSE(stopped.channel().try_recv().has_value());
}

TEST_CASE("reset re-arms a timer") {
  spindle::timer t(60s);
  const auto start = steady::now();
  CHECK(t.reset(10ms));
  auto fired_at = spindle::go([c = t.channel()]() mutable { return c.recv(); }).join();
  REQUIRE(fired_at.has_value());
  CHECK(*fired_at - start >= 10ms);
  CHECK_FALSE(t.reset(5ms));  // it had fired
  CHECK(t.channel().recv().has_value());
}

TEST_CASE("a function timer runs its function on a fiber") {
  std::promise<bool> ran;
  auto in_fiber = ran.get_future();
  spindle::timer t(1ms, [&ran] { ran.set_value(spindle::this_fiber::in_fiber()); });
  REQUIRE(ready_within(in_fiber));
  CHECK(in_fiber.get());
  CHECK_FALSE(static_cast<bool>(t.channel()));
}

TEST_CASE("a ticker ticks until stopped") {
  spindle::ticker tick(2ms);
  auto c = tick.channel();
  steady::time_point previous{};
  for (int i = 0; i < 5; ++i) {
    auto at = c.recv();
    REQUIRE(at.has_value());
    CHECK(*at > previous);
    previous = *at;
  }
  tick.stop();
  c.try_recv();              // a tick sent before stop() may still be buffered
  spindle::sleep_for(20ms);  // ten periods
  CHECK_FALSE(c.try_recv().has_value());
  CHECK_THROWS_AS(spindle::ticker(0ms), spindle::usage_error);
  CHECK_THROWS_AS(tick.reset(-1ms), spindle::usage_error);
}

TEST_CASE("after delivers once") {
  const auto start = steady::now();
  auto c = spindle::after(5ms);
  auto at = c.recv();
  REQUIRE(at.has_value());
  CHECK(*at - start >= 5ms);
}

TEST_CASE("100,000 sleeping fibers share one timer handle") {
  using spindle::detail::event_loop;
  const std::size_t handles_before = event_loop::handle_count();
  constexpr int count = spindle_test::many_fibers(100'000);
  std::atomic<int> asleep{0};
  std::promise<void> gate;
  auto all_asleep = gate.get_future();
  std::vector<spindle::handle<void>> sleepers;
  sleepers.reserve(count);
  for (int i = 0; i < count; ++i) {
    sleepers.push_back(spindle::go([&] {
      if (asleep.fetch_add(1) == count - 1) gate.set_value();
      spindle::sleep_for(300ms);
    }));
  }
  // Generous: under AddressSanitizer each fiber faults in about nine pages
  // (its stack's and their shadow), and on a VM whose page faults cost
  // 15-25 us (bench/fault_price) that alone is 15-20 s.
  REQUIRE(ready_within(all_asleep, 90s));
  const std::size_t handles_during = event_loop::handle_count();
  for (auto& s : sleepers) s.join();
  CHECK(handles_during == handles_before);
  CHECK(event_loop::pending_timers() == 0);
}

TEST_CASE("timers fire while the run queues never empty") {
  // More yielding fibers than a ring holds: the overflow keeps the global
  // queue non-empty and the rings full, so only the every-61st-pick turn
  // polls the loops. The sleeper must still wake, ten times.
  std::atomic<bool> stop{false};
  std::vector<spindle::handle<void>> yielders;
  for (int i = 0; i < 600; ++i) {
    yielders.push_back(spindle::go([&stop] {
      while (!stop.load(std::memory_order_relaxed)) spindle::yield();
    }));
  }
  auto sleeper = spindle::go([] {
    for (int i = 0; i < 10; ++i) spindle::sleep_for(1ms);
  });
  CHECK(spindle_test::wait_until([&] { return sleeper.done(); }));
  stop = true;
  for (auto& y : yielders) y.join();
  if (sleeper.done()) sleeper.join();
}

TEST_CASE("timed waits from many threads and fibers at once") {
  std::vector<std::thread> threads;
  std::atomic<int> timeouts{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&timeouts] {
      spindle::chan<int> never(0);
      for (int i = 0; i < 50; ++i) timeouts += !never.recv_for(1ms).has_value();
    });
  }
  std::vector<spindle::handle<void>> fibers;
  for (int f = 0; f < 100; ++f) {
    fibers.push_back(spindle::go([&timeouts] {
      spindle::chan<int> never(0);
      for (int i = 0; i < 20; ++i) timeouts += !never.recv_for(1ms).has_value();
    }));
  }
  for (auto& t : threads) t.join();
  for (auto& f : fibers) f.join();
  CHECK(timeouts.load() == 4 * 50 + 100 * 20);
}

// The wheel on its own, on a simulated clock: 100 us slots, so its ring
// reaches 102.4 ms ahead and later timers start in the overflow heap.
namespace {

using spindle::detail::timer_entry;
using spindle::detail::timer_wheel;
constexpr std::int64_t slot_ns = 100'000;

// check_drain: advances the clock in random steps to `end`, checking that
// each timer comes out once, never before its deadline, in (deadline,
// insertion) order, that nothing due is left behind, and that the wake time
// lies within one slack of the earliest deadline; returns how many came out.
std::size_t check_drain(timer_wheel& wheel, std::vector<timer_entry>& entries, std::int64_t now,
                        std::int64_t end, std::mt19937_64& rng) {
  std::vector<timer_entry*> out;
  std::size_t fired = 0;
  while (now < end) {
    now += static_cast<std::int64_t>(rng() % (3 * slot_ns));
    const std::int64_t first = wheel.earliest(), wake = wheel.wake_time(slot_ns);
    CHECK(first <= wake);
    if (first != INT64_MAX) CHECK(wake <= first + slot_ns);
    out.clear();
    wheel.take_due(now, out);
    CHECK(wheel.earliest() > now);  // nothing due is left behind
    for (std::size_t i = 0; i < out.size(); ++i) {
      timer_entry* e = out[i];
      CHECK(e->heap_index == timer_entry::not_queued);
      CHECK(e->deadline_ns <= now);
      if (i > 0) {
        const timer_entry* p = out[i - 1];
        CHECK((p->deadline_ns < e->deadline_ns ||
               (p->deadline_ns == e->deadline_ns && p < e)));  // entries were pushed in order
      }
      e->cancelled = true;  // marks "fired" for the caller
    }
    fired += out.size();
  }
  (void)entries;
  return fired;
}

}  // namespace

TEST_CASE("timer wheel: every timer fires once, in order, never before its deadline") {
  std::mt19937_64 rng(7);
  const std::int64_t start = 5'000'000'000;
  timer_wheel wheel(slot_ns, start);
  std::vector<timer_entry> entries(20'000);
  for (auto& e : entries) {  // within the ring, in the overflow heap, equal deadlines, past ones
    e.deadline_ns = start - 1'000'000 + static_cast<std::int64_t>(rng() % 400) * 1'000'000 / 3;
    wheel.push(&e);
  }
  CHECK(wheel.size() == entries.size());
  const std::size_t fired = check_drain(wheel, entries, start, start + 200'000'000, rng);
  CHECK(fired == entries.size());
  CHECK(wheel.size() == 0);
  CHECK(wheel.earliest() == INT64_MAX);
  CHECK(wheel.wake_time(slot_ns) == INT64_MAX);
  for (auto& e : entries) CHECK(e.cancelled);
}

TEST_CASE("timer wheel: removal from a slot and from the overflow heap") {
  const std::int64_t start = 1'000'000'000;
  timer_wheel wheel(slot_ns, start);
  std::vector<timer_entry> entries(6);
  const std::int64_t deadlines[] = {start + 50'000,     start + 60'000,
                                    start + 70'000,                           // one slot
                                    start + 500'000,    start + 900'000'000,  // ring, overflow
                                    start + 950'000'000};
  for (std::size_t i = 0; i < entries.size(); ++i) {
    entries[i].deadline_ns = deadlines[i];
    wheel.push(&entries[i]);
  }
  CHECK(wheel.earliest() == start + 50'000);
  CHECK(wheel.wake_time(slot_ns) == start + 70'000);  // the three within one slack
  wheel.remove(&entries[0]);                          // the last of the slot moves into its place
  wheel.remove(&entries[2]);                          // ... and is removed from there
  wheel.remove(&entries[4]);                          // overflow
  CHECK(wheel.size() == 3);
  CHECK(wheel.earliest() == start + 60'000);
  CHECK(wheel.wake_time(slot_ns) == start + 60'000);
  std::vector<timer_entry*> out;
  wheel.take_due(start + 2'000'000'000, out);  // a long absence: far past the ring
  REQUIRE(out.size() == 3);
  CHECK(out[0] == &entries[1]);
  CHECK(out[1] == &entries[3]);
  CHECK(out[2] == &entries[5]);
  CHECK(wheel.size() == 0);
}

// The earliest deadline and the wake time, worked out from every pending
// deadline, as timer_wheel.hpp defines them.
std::pair<std::int64_t, std::int64_t> reference_wake(const std::set<timer_entry*>& pending,
                                                     std::int64_t slack) {
  std::int64_t first = INT64_MAX;
  for (const timer_entry* e : pending) first = std::min(first, e->deadline_ns);
  if (first == INT64_MAX) return {first, first};
  std::int64_t wake = first;
  for (const timer_entry* e : pending) {
    if (e->deadline_ns <= first + slack) wake = std::max(wake, e->deadline_ns);
  }
  return {first, wake};
}

TEST_CASE("timer wheel: earliest and wake time stay exact through pushes, removals and firing") {
  std::mt19937_64 rng(11);
  std::int64_t now = 3'000'000'000;
  timer_wheel wheel(slot_ns, now);
  std::vector<timer_entry> entries(300);
  std::set<timer_entry*> pending;
  std::vector<timer_entry*> out;
  for (int step = 0; step < 40'000; ++step) {
    timer_entry& e = entries[rng() % entries.size()];
    const unsigned action = static_cast<unsigned>(rng() % 8);
    if (pending.count(&e) == 0 && action < 4) {  // few distinct deadlines: ties are common
      e.deadline_ns = now + static_cast<std::int64_t>(rng() % 40) * slot_ns / 8;
      wheel.push(&e);
      pending.insert(&e);
    } else if (pending.count(&e) != 0 && action < 6) {
      wheel.remove(&e);
      pending.erase(&e);
    } else if (action == 7) {
      now += static_cast<std::int64_t>(rng() % slot_ns);
      out.clear();
      wheel.take_due(now, out);
      for (timer_entry* fired : out) {
        CHECK(fired->deadline_ns <= now);
        CHECK(pending.erase(fired) == 1);
      }
    }
    const auto [first, wake] = reference_wake(pending, slot_ns);
    REQUIRE(wheel.earliest() == first);
    REQUIRE(wheel.wake_time(slot_ns) == wake);
    REQUIRE(wheel.size() == pending.size());
  }
}

TEST_CASE("timer wheel: a timer set after a long idle gap still fires on time") {
  const std::int64_t start = 1'000'000'000;
  timer_wheel wheel(slot_ns, start);
  std::vector<timer_entry*> out;
  wheel.take_due(start + 10'000'000'000, out);  // nothing pending; the cursor jumps
  timer_entry e;
  e.deadline_ns = start + 10'000'000'000 + 250'000;
  wheel.push(&e);
  CHECK(wheel.wake_time(slot_ns) == e.deadline_ns);
  wheel.take_due(e.deadline_ns - 1, out);
  CHECK(out.empty());
  wheel.take_due(e.deadline_ns, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0] == &e);
}

TEST_CASE("timer wheel: timers close together wake the loop once, across a slot boundary") {
  const std::int64_t start = 1'000'000'000;  // a slot boundary
  timer_wheel wheel(slot_ns, start - 500'000);
  std::vector<timer_entry> group(4);
  const std::int64_t deadlines[] = {start - 10'000, start + 10'000, start + 85'000,
                                    start + 95'000};  // the last is past one slack
  for (std::size_t i = 0; i < group.size(); ++i) {
    group[i].deadline_ns = deadlines[i];
    wheel.push(&group[i]);
  }
  const std::int64_t wake = wheel.wake_time(slot_ns);
  CHECK(wake == start + 85'000);
  std::vector<timer_entry*> out;
  wheel.take_due(wake, out);
  REQUIRE(out.size() == 3);
  CHECK(out[0] == &group[0]);
  CHECK(out[2] == &group[2]);
  CHECK(wheel.earliest() == start + 95'000);
  CHECK(wheel.size() == 1);
}
