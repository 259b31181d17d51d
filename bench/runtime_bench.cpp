// bench/runtime_bench.cpp: the runtime-behaviour workloads of BENCHMARKS.md:
// blocking_handoff, cpu_hog (with the timer probe), timer_probe_idle,
// idle_cpu and timers. Each reports its figures as user counters.
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <spindle/spindle.hpp>
#include <vector>

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

double cpu_seconds() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
         static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

std::size_t procs() { return spindle::current_options().procs; }

// probe: 1,000 runtime sleeps of 1 ms; returns how late each woke, in microseconds.
std::vector<double> probe(int samples) {
  std::vector<double> late;
  late.reserve(static_cast<std::size_t>(samples));
  for (int i = 0; i < samples; ++i) {
    const auto start = steady::now();
    spindle::sleep_for(1ms);
    late.push_back(std::chrono::duration<double, std::micro>(steady::now() - start - 1ms).count());
  }
  return late;
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

void report_probe(benchmark::State& state, const std::vector<double>& late) {
  state.counters["p50_lateness_us"] = quantile(late, 0.5);
  state.counters["p99_lateness_us"] = quantile(late, 0.99);
  state.counters["max_lateness_us"] = *std::max_element(late.begin(), late.end());
  state.counters["max_threads"] = static_cast<double>(spindle::runtime_stats().threads_peak);
}

// with_probe: runs `load` (2P fibers) beside the probe fiber.
template <class Load>
void with_probe(benchmark::State& state, Load load) {
  for (auto _ : state) {
    std::vector<spindle::handle<void>> loaders;
    for (std::size_t i = 0; i < 2 * procs(); ++i) loaders.push_back(spindle::go(load));
    auto probe_fiber = spindle::go(probe, 1000);
    const std::vector<double> late = probe_fiber.join();
    for (auto& l : loaders) l.join();
    report_probe(state, late);
  }
}

void blocking_handoff(benchmark::State& state) {
  with_probe(state, [] {
    const auto until = steady::now() + 2s;
    while (steady::now() < until) {
      timespec ts{0, 200'000'000};
      while (nanosleep(&ts, &ts) != 0) {
      }
    }
  });
}
BENCHMARK(blocking_handoff)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

std::atomic<bool> hog_stop{false};

void cpu_hog(benchmark::State& state) {
  hog_stop = false;
  spindle::timer stop_after(2s, [] { hog_stop = true; });
  with_probe(state, [] {
    std::uint64_t x = 0;
    while (!hog_stop.load(std::memory_order_relaxed)) ++x;
    benchmark::DoNotOptimize(x);
  });
}
BENCHMARK(cpu_hog)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

void timer_probe_idle(benchmark::State& state) {
  for (auto _ : state) report_probe(state, spindle::go(probe, 1000).join());
}
BENCHMARK(timer_probe_idle)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

void idle_cpu(benchmark::State& state) {
  constexpr int pairs = 100;
  for (auto _ : state) {
    std::atomic<bool> stop{false};
    std::atomic<long> trips{0};
    std::vector<spindle::handle<void>> fibers;
    for (int i = 0; i < pairs; ++i) {
      spindle::chan<int> ping(1), pong(1);
      fibers.push_back(spindle::go([&stop, &trips, ping, pong]() mutable {
        long n = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          spindle::sleep_for(1ms);
          ping.send(1);
          pong.recv();
          ++n;
        }
        ping.close();
        trips += n;
      }));
      fibers.push_back(spindle::go([ping, pong]() mutable {
        for (int v : ping) pong.send(int(v));
      }));
    }
    const std::uint64_t compactions0 = spindle::runtime_stats().compactions;
    const double cpu0 = cpu_seconds();
    const auto t0 = steady::now();
    spindle::sleep_for(5s);
    const double cpu = cpu_seconds() - cpu0;
    const double wall = std::chrono::duration<double>(steady::now() - t0).count();
    const spindle::stats after = spindle::runtime_stats();
    stop = true;
    for (auto& f : fibers) f.join();
    state.counters["cpu_per_wall"] = cpu / wall;
    state.counters["round_trips_per_s"] = static_cast<double>(trips.load()) / wall;
    state.counters["procs_active"] = static_cast<double>(after.procs_active);
    state.counters["compactions"] = static_cast<double>(after.compactions - compactions0);
  }
}
BENCHMARK(idle_cpu)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

void timers(benchmark::State& state) {
  constexpr int fibers = 100'000, sleeps = 10;
  std::mt19937_64 rng(1);
  for (auto _ : state) {
    std::vector<std::int64_t> durations(static_cast<std::size_t>(fibers) * sleeps);
    std::int64_t ideal = 0;
    for (int f = 0; f < fibers; ++f) {
      std::int64_t sum = 0;
      for (int j = 0; j < sleeps; ++j) {
        const std::int64_t d = static_cast<std::int64_t>(rng() % 100'000'000);
        durations[static_cast<std::size_t>(f * sleeps + j)] = d;
        sum += d;
      }
      ideal = std::max(ideal, sum);
    }
    std::atomic<std::int64_t> late_ns{0};
    spindle::wait_group done;
    done.add(fibers);
    const double cpu0 = cpu_seconds();
    const auto t0 = steady::now();
    for (int f = 0; f < fibers; ++f) {
      spindle::go([&, mine = &durations[static_cast<std::size_t>(f * sleeps)]] {
        std::int64_t late = 0;
        for (int j = 0; j < sleeps; ++j) {
          const auto start = steady::now();
          spindle::sleep_for(std::chrono::nanoseconds(mine[j]));
          late += (steady::now() - start).count() - mine[j];
        }
        late_ns += late;
        done.done();
      });
    }
    done.wait();
    const auto wall = steady::now() - t0;
    state.counters["wall_over_ideal"] =
        static_cast<double>(std::chrono::nanoseconds(wall).count()) / static_cast<double>(ideal);
    state.counters["cpu_ms"] = (cpu_seconds() - cpu0) * 1e3;
    state.counters["mean_lateness_us"] =
        static_cast<double>(late_ns.load()) / (fibers * sleeps) / 1e3;
  }
}
BENCHMARK(timers)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
