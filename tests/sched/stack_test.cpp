// tests/sched/stack_test.cpp: the stack pool: reuse, sizes, guard pages.
#include <doctest/doctest.h>

#include <fstream>
#include <spindle/spindle.hpp>
#include <vector>

#include "guard_regions.hpp"

TEST_CASE("stacks are reused rather than reserved anew") {
  for (int i = 0; i < 100; ++i) spindle::go([] {}).join();
  const auto before = spindle::runtime_stats().stacks_reserved;
  for (int i = 0; i < 10'000; ++i) spindle::go([] {}).join();
  const auto after = spindle::runtime_stats().stacks_reserved;
  CHECK(after - before <= 256);  // at most a few cache batches, never one per fiber
}

namespace {

std::size_t max_map_count() {
  std::ifstream in("/proc/sys/vm/max_map_count");
  std::size_t n = 65530;
  in >> n;
  return n;
}

}  // namespace

// With guard regions every stack is guarded (none of them costs a mapping):
// 20,000 live fibers are more than the mprotect budget of a quarter of
// vm.max_map_count (16,382 by default). Without, the budget holds.
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
  if (spindle_test::kernel_has_guard_regions()) {
    CHECK(s.stacks_guarded >= count);
  } else {
    CHECK(s.stacks_guarded > 0);
    CHECK(s.stacks_guarded <= max_map_count() / 4);
  }
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
