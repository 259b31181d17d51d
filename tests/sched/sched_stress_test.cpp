// tests/sched/sched_stress_test.cpp: hunts for lost wake-ups in the scheduler.
//
// Each case races a submission against a worker going to sleep, many times;
// a lost wake-up shows as a hang (bounded by meson's timeout) or as a
// safety-net wake (checked by tests/main.cpp).
#include <doctest/doctest.h>

#include <atomic>
#include <spindle/spindle.hpp>
#include <thread>
#include <vector>

#include "scale.hpp"

TEST_CASE("spawn from a plain thread wakes a sleeping worker, 20,000 times") {
  long long sum = 0;
  for (int i = 0; i < 20'000; ++i) sum += spindle::go([i] { return i; }).join();
  CHECK(sum == 20'000LL * 19'999 / 2);
}

TEST_CASE("threads racing spawns and joins against idle workers") {
  constexpr int threads = 4, rounds = 5'000;
  std::atomic<int> done{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&done] {
      for (int i = 0; i < rounds; ++i) {
        auto h = spindle::go([] {
          spindle::yield();
          return 1;
        });
        done.fetch_add(h.join());
      }
    });
  }
  for (auto& t : ts) t.join();
  CHECK(done.load() == threads * rounds);
}

// Under ThreadSanitizer, a smaller forest (tests/scale.hpp).
constexpr int chain_roots = spindle_test::many_fibers(300);

TEST_CASE("join chains across processors") {
  auto chain = [](auto& self, int depth) -> int {
    if (depth == 0) return 0;
    return spindle::go([&self, depth] { return self(self, depth - 1); }).join() + 1;
  };
  std::vector<spindle::handle<int>> roots;
  for (int r = 0; r < chain_roots; ++r) {
    roots.push_back(spindle::go([&chain] { return chain(chain, 300); }));
  }
  long long total = 0;
  for (auto& h : roots) total += h.join();
  CHECK(total == chain_roots * 300);
}

TEST_CASE("bursts separated by idleness") {
  for (int burst = 0; burst < 2'000; ++burst) {
    std::vector<spindle::handle<int>> hs;
    for (int i = 0; i < 8; ++i)
      hs.push_back(spindle::go([i] {
        spindle::yield();
        return i;
      }));
    int sum = 0;
    for (auto& h : hs) sum += h.join();
    REQUIRE(sum == 28);
  }
}
