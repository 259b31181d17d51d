// tests/sched/stack_test.cpp: the stack pool: reuse, sizes, guard budget.
#include <doctest/doctest.h>

#include <spindle/spindle.hpp>
#include <vector>

TEST_CASE("stacks are reused rather than reserved anew") {
  for (int i = 0; i < 100; ++i) spindle::go([] {}).join();
  const auto before = spindle::runtime_stats().stacks_reserved;
  for (int i = 0; i < 10'000; ++i) spindle::go([] {}).join();
  const auto after = spindle::runtime_stats().stacks_reserved;
  CHECK(after - before <= 256);  // at most a few cache batches, never one per fiber
}

TEST_CASE("stacks come from slabs, guard pages within the budget") {
  std::vector<spindle::handle<void>> hs;
  std::atomic<int> started{0};
  constexpr int count = 20'000;
  for (int i = 0; i < count; ++i) {
    hs.push_back(spindle::go([&started] {
      started.fetch_add(1);
      while (started.load() < count) spindle::yield();
    }));
  }
  for (auto& h : hs) h.join();
  const spindle::stats s = spindle::runtime_stats();
  CHECK(s.stacks_reserved >= count);
  CHECK(s.stack_slabs * 50 < s.stacks_reserved);  // many stacks per mapping
  CHECK(s.stacks_guarded <= s.stacks_reserved);
  CHECK(s.stacks_guarded > 0);
}

TEST_CASE("a per-spawn stack size is honoured") {
  auto h = spindle::go({.stack_size = 2 << 20}, [] {
    volatile char big[1 << 20];  // would overflow the 256 KiB default
    big[0] = 1;
    big[sizeof big - 1] = 2;
    return big[0] + big[sizeof big - 1];
  });
  CHECK(h.join() == 3);
}
