// bench/sched_bench.cpp: the scheduler workloads of BENCHMARKS.md:
// spawn_one (from a plain thread and from a fiber), spawn_many, yield_now,
// spawn_recursive. Each iteration checks its own result.
#include <benchmark/benchmark.h>

#include <spindle/spindle.hpp>
#include <vector>

namespace {

// in_fiber: runs the benchmark loop body on a fiber, for the /from_fiber variants.
template <class Body>
void in_fiber(benchmark::State& state, Body body) {
  spindle::go([&state, &body] { body(state); }).join();
}

void spawn_one(benchmark::State& state) {
  for (auto _ : state) spindle::go([] {}).join();
}
BENCHMARK(spawn_one)->UseRealTime();

void spawn_one_from_fiber(benchmark::State& state) {
  in_fiber(state, [](benchmark::State& s) {
    for (auto _ : s) spindle::go([] {}).join();
  });
}
BENCHMARK(spawn_one_from_fiber)->Name("spawn_one/from_fiber")->UseRealTime();

constexpr int spawn_many_count = 25'000;

void spawn_many_body(benchmark::State& state) {
  std::vector<spindle::handle<int>> handles;
  handles.reserve(spawn_many_count);
  for (auto _ : state) {
    for (int i = 0; i < spawn_many_count; ++i) handles.push_back(spindle::go([] { return 1; }));
    int finished = 0;
    for (auto& h : handles) finished += h.join();
    if (finished != spawn_many_count) state.SkipWithError("lost a fiber");
    handles.clear();
  }
}

void spawn_many(benchmark::State& state) { spawn_many_body(state); }
BENCHMARK(spawn_many)->UseRealTime()->Unit(benchmark::kMillisecond);

void spawn_many_from_fiber(benchmark::State& state) { in_fiber(state, spawn_many_body); }
BENCHMARK(spawn_many_from_fiber)
    ->Name("spawn_many/from_fiber")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void yield_now(benchmark::State& state) {
  constexpr int fibers = 300, yields = 300;
  std::vector<spindle::handle<int>> handles;
  handles.reserve(fibers);
  for (auto _ : state) {
    for (int i = 0; i < fibers; ++i) {
      handles.push_back(spindle::go([] {
        for (int j = 0; j < yields; ++j) spindle::yield();
        return 1;
      }));
    }
    int finished = 0;
    for (auto& h : handles) finished += h.join();
    if (finished != fibers) state.SkipWithError("lost a fiber");
    handles.clear();
  }
}
BENCHMARK(yield_now)->UseRealTime()->Unit(benchmark::kMillisecond);

int spawn_chain(int depth) {
  if (depth == 0) return 0;
  return spindle::go(spawn_chain, depth - 1).join() + 1;
}

void spawn_recursive(benchmark::State& state) {
  constexpr int chains = 300, depth = 300;
  std::vector<spindle::handle<int>> handles;
  handles.reserve(chains);
  for (auto _ : state) {
    for (int i = 0; i < chains; ++i) handles.push_back(spindle::go(spawn_chain, depth));
    int total = 0;
    for (auto& h : handles) total += h.join();
    if (total != chains * depth) state.SkipWithError("lost a fiber");
    handles.clear();
  }
}
BENCHMARK(spawn_recursive)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
