// tests/sched/go_test.cpp: go(), handles, join, detach, yield, this_fiber.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <set>
#include <spindle/spindle.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "scale.hpp"

using namespace std::chrono_literals;

namespace {

// ready_within: whether the future becomes ready in a generous time; a test
// never waits without bound.
template <class T>
bool ready_within(std::future<T>& f, std::chrono::seconds limit = 30s) {
  return f.wait_for(limit) == std::future_status::ready;
}

int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

}  // namespace

TEST_CASE("go and join from a plain thread return the result") {
  auto h = spindle::go([](int a, int b) { return a + b; }, 40, 2);
  CHECK(h.joinable());
  CHECK(h.join() == 42);
  CHECK_FALSE(h.joinable());
}

TEST_CASE("go and join from a fiber") {
  auto outer = spindle::go([] {
    CHECK(spindle::this_fiber::in_fiber());
    auto inner = spindle::go([] { return fib(15); });
    return inner.join() + 1;
  });
  CHECK(outer.join() == fib(15) + 1);
}

TEST_CASE("generic lambdas, references through std::ref, void results") {
  int target = 0;
  auto h = spindle::go([](int& out, auto value) { out = value; }, std::ref(target), 7);
  h.join();
  CHECK(target == 7);
}

TEST_CASE("move-only results and arguments") {
  auto h = spindle::go([](std::unique_ptr<int> p) { return std::make_unique<int>(*p * 3); },
                       std::make_unique<int>(5));
  std::unique_ptr<int> r = h.join();
  REQUIRE(r);
  CHECK(*r == 15);
}

TEST_CASE("an exception escaping a fiber is rethrown by join") {
  auto h = spindle::go([]() -> int { throw std::runtime_error("fiber failed"); });
  CHECK_THROWS_WITH_AS(h.join(), "fiber failed", std::runtime_error);
}

TEST_CASE("an exception propagates through nested joins") {
  auto h = spindle::go([] {
    auto inner = spindle::go([] { throw std::invalid_argument("inner"); });
    inner.join();
  });
  CHECK_THROWS_AS(h.join(), std::invalid_argument);
}

TEST_CASE("handle misuse is a usage_error naming the mistake") {
  auto h = spindle::go([] { return 1; });
  CHECK(h.join() == 1);
  CHECK_THROWS_WITH_AS(h.join(), "spindle: join called twice on one handle", spindle::usage_error);

  auto d = spindle::go([] {});
  d.detach();
  CHECK_THROWS_WITH_AS(d.join(), "spindle: join on a detached fiber", spindle::usage_error);
  CHECK_THROWS_AS(d.detach(), spindle::usage_error);

  spindle::handle<int> empty;
  CHECK_THROWS_WITH_AS(empty.join(),
                       "spindle: join on an empty handle (default-constructed or moved from)",
                       spindle::usage_error);
  auto moved_from = spindle::go([] { return 2; });
  auto moved_to = std::move(moved_from);
  CHECK_THROWS_AS(moved_from.join(), spindle::usage_error);
  CHECK(moved_to.join() == 2);
}

TEST_CASE("a detached fiber runs to completion") {
  std::promise<int> done;
  auto result = done.get_future();
  spindle::go([&done] { done.set_value(spindle::this_fiber::id() != 0 ? 1 : 0); }).detach();
  REQUIRE(ready_within(result));
  CHECK(result.get() == 1);
}

TEST_CASE("a dropped handle lets the fiber run on") {
  std::promise<void> done;
  auto result = done.get_future();
  {
    spindle::go([&done] { done.set_value(); });
  }
  CHECK(ready_within(result));
}

namespace {
std::promise<std::string>* unhandled_report = nullptr;
void record_unhandled(const spindle::fiber_info& info, std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    unhandled_report->set_value(std::string(info.name) + ": " + e.what());
  }
}
}  // namespace

TEST_CASE("an exception escaping a detached fiber reaches the unhandled-exception handler") {
  std::promise<std::string> report;
  unhandled_report = &report;
  auto previous = spindle::set_unhandled_exception_handler(record_unhandled);
  auto result = report.get_future();
  spindle::go({.name = "doomed"}, [] { throw std::runtime_error("nobody joins me"); }).detach();
  REQUIRE(ready_within(result));
  CHECK(result.get() == "doomed: nobody joins me");

  std::promise<std::string> second;
  unhandled_report = &second;
  auto late = second.get_future();
  {
    auto h = spindle::go({.name = "late"}, [] { throw std::runtime_error("dropped after"); });
    while (!h.done()) std::this_thread::yield();
  }  // the handle is dropped after the fiber finished: reported now
  REQUIRE(ready_within(late));
  CHECK(late.get() == "late: dropped after");
  spindle::set_unhandled_exception_handler(previous);
}

TEST_CASE("fiber ids are unique and names are kept") {
  auto a = spindle::go({.name = "alpha"}, [] {
    return std::pair(spindle::this_fiber::id(), std::string(spindle::this_fiber::name()));
  });
  auto b = spindle::go([] { return spindle::this_fiber::id(); });
  const auto [id_a, name_a] = a.join();
  const auto id_b = b.join();
  CHECK(id_a != 0);
  CHECK(id_b != 0);
  CHECK(id_a != id_b);
  CHECK(name_a == "alpha");
  CHECK(spindle::this_fiber::id() == 0);
  CHECK(spindle::this_fiber::name().empty());
  CHECK_FALSE(spindle::this_fiber::in_fiber());
  CHECK(spindle::this_fiber::processor() == -1);
}

TEST_CASE("yield lets other fibers run") {
  std::atomic<int> turns{0};
  auto spinner = [&turns](int me) {
    for (int i = 0; i < 1000; ++i) {
      turns.fetch_add(1);
      spindle::yield();
    }
    return me;
  };
  auto a = spindle::go(spinner, 1);
  auto b = spindle::go(spinner, 2);
  CHECK(a.join() + b.join() == 3);
  CHECK(turns.load() == 2000);
  spindle::yield();  // from a plain thread: yields the thread
}

// A pair handing a message back and forth readies each other into runnext
// and switches to it directly; the slice and the fair turn must still let a
// queued fiber and a due timer run (on one processor, nothing else would).
TEST_CASE("a ping-pong pair leaves queued fibers and timers their turn") {
  std::atomic<bool> queued_ran{false}, timer_fired{false};
  auto both_ran_meanwhile = std::async(std::launch::async, [&] {
    return spindle::go([&] {
             spindle::chan<int> ping(0), pong(0);
             auto partner = spindle::go([&] {
               for (int v : ping) pong.send(int(v));
             });
             auto queued = spindle::go([&] { queued_ran = true; });
             auto sleeper = spindle::go([&] {
               spindle::sleep_for(1ms);
               timer_fired = true;
             });
             const auto give_up = std::chrono::steady_clock::now() + 20s;
             while (!(queued_ran && timer_fired) && std::chrono::steady_clock::now() < give_up) {
               ping.send(1);
               pong.recv();
             }
             const bool both = queued_ran && timer_fired;  // before the pair stops
             ping.close();
             partner.join();
             queued.join();
             sleeper.join();
             return both;
           })
        .join();
  });
  REQUIRE(ready_within(both_ran_meanwhile));
  CHECK(both_ran_meanwhile.get());
}

TEST_CASE("100,000 fibers alive at once") {
  constexpr int count = spindle_test::many_fibers(100'000);
  std::atomic<int> started{0};
  std::vector<spindle::handle<int>> handles;
  handles.reserve(count);
  for (int i = 0; i < count; ++i) {
    handles.push_back(spindle::go([&started, i] {
      started.fetch_add(1);
      while (started.load() < count) spindle::yield();  // everyone is alive before anyone ends
      return i;
    }));
  }
  long long sum = 0;
  for (auto& h : handles) sum += h.join();
  CHECK(sum == static_cast<long long>(count) * (count - 1) / 2);
}

namespace {
// recurse: uses about `depth` KiB of stack.
int recurse(int depth) {
  volatile char frame[1024];
  frame[0] = static_cast<char>(depth);
  if (depth == 0) return frame[0];
  return recurse(depth - 1) + 1 + frame[0] * 0;
}
}  // namespace

TEST_CASE("deep recursion within the stack") {
  auto default_stack = spindle::go([] { return recurse(180); });  // 256 KiB default
  CHECK(default_stack.join() == 180);
  auto big_stack = spindle::go({.stack_size = 4 << 20}, [] { return recurse(3500); });
  CHECK(big_stack.join() == 3500);
}

TEST_CASE("many threads spawning and joining at once") {
  constexpr int threads = 8, per_thread = 2000;
  std::atomic<long long> total{0};
  std::vector<std::thread> spawners;
  for (int t = 0; t < threads; ++t) {
    spawners.emplace_back([&total, t] {
      std::vector<spindle::handle<int>> hs;
      for (int i = 0; i < per_thread; ++i)
        hs.push_back(spindle::go([=] { return t * per_thread + i; }));
      for (auto& h : hs) total.fetch_add(h.join());
    });
  }
  for (auto& s : spawners) s.join();
  const long long n = threads * per_thread;
  CHECK(total.load() == n * (n - 1) / 2);
}

TEST_CASE("a burst spawned from one fiber is run by every processor") {
  // Each fiber computes and yields until the burst has run on every
  // processor (or a generous deadline passes), so the outcome does not depend
  // on how fast one processor could finish the burst alone: the balancer must
  // spread it, however late the monitor gets a CPU.
  const std::size_t procs = spindle::current_options().procs;
  std::vector<std::atomic<bool>> ran_on(procs);
  std::atomic<std::size_t> distinct{0};
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  auto burst = spindle::go([&] {
    std::vector<spindle::handle<void>> hs;
    for (int i = 0; i < 2000; ++i) {
      hs.push_back(spindle::go([&] {
        do {
          volatile int sink = fib(18);
          (void)sink;
          const auto here = static_cast<std::size_t>(spindle::this_fiber::processor());
          if (!ran_on[here].exchange(true)) ++distinct;
          spindle::yield();
        } while (distinct.load() < procs && std::chrono::steady_clock::now() < deadline);
      }));
    }
    for (auto& h : hs) h.join();
  });
  burst.join();
  CHECK(distinct.load() == procs);
}

TEST_CASE("work spreads by offload or by the balancer, not by stealing") {
  if (spindle::current_options().procs < 2) return;
  const spindle::stats s = spindle::runtime_stats();
  CHECK(s.offloads + s.balancer_moves > 0);
}
