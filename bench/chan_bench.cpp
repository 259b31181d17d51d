// bench/chan_bench.cpp: the channel workloads of BENCHMARKS.md: ping_pong,
// fanout, context_switch_quiet, context_switch_busy, and parked_memory.
// Each mirrors ../shared/anchors/go (internal/workloads): the driving loop
// runs on a fiber, as Go's runs on a goroutine; set-up and tear-down happen
// outside the timed loop; each workload checks its own result.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <spindle/spindle.hpp>
#include <vector>

namespace {

// in_fiber: runs the benchmark loop body on a fiber.
template <class Body>
void in_fiber(benchmark::State& state, Body body) {
  spindle::go([&state, &body] { body(state); }).join();
}

void ping_pong(benchmark::State& state) {
  spindle::chan<spindle::chan<std::uint8_t>> requests(10);
  auto server = spindle::go([requests]() mutable {
    for (auto& reply : requests) reply.send(1);
  });
  in_fiber(state, [&](benchmark::State& s) {
    for (auto _ : s) {
      int bytes = spindle::go([requests]() mutable {
                    int sum = 0;
                    for (int i = 0; i < 1000; ++i) {
                      spindle::chan<std::uint8_t> reply(1);
                      requests.send(reply);
                      sum += *reply.recv();
                    }
                    return sum;
                  }).join();
      if (bytes != 1000) s.SkipWithError("lost a reply");
    }
  });
  requests.close();
  server.join();
}
BENCHMARK(ping_pong)->UseRealTime()->Unit(benchmark::kMicrosecond);

void fanout(benchmark::State& state) {
  constexpr int receivers = 1000, messages = 1000;
  struct empty {};
  spindle::chan<empty> c(1);
  std::atomic<long> received{0};
  std::vector<spindle::handle<void>> fibers;
  fibers.reserve(receivers);
  for (int i = 0; i < receivers; ++i) {
    fibers.push_back(spindle::go([c, &received]() mutable {
      long n = 0;
      for (empty e : c) {
        static_cast<void>(e);
        ++n;
      }
      received += n;
    }));
  }
  long sent = 0;
  in_fiber(state, [&](benchmark::State& s) {
    for (auto _ : s) {
      for (int i = 0; i < messages; ++i) c.send(empty{});
      sent += messages;
    }
  });
  c.close();
  for (auto& f : fibers) f.join();
  if (received != sent) state.SkipWithError("lost a message");
}
BENCHMARK(fanout)->UseRealTime()->Unit(benchmark::kMicrosecond);

// ring: `length` fibers, each forwarding from its input channel (capacity 1)
// to the next; first() feeds the ring, last() is its far end.
class ring {
 public:
  explicit ring(int length) {
    channels_.emplace_back(1);
    for (int i = 0; i < length; ++i) {
      channels_.emplace_back(1);
      spindle::chan<long> in = channels_[static_cast<std::size_t>(i)];
      spindle::chan<long> out = channels_.back();
      forwarders_.push_back(spindle::go([in, out]() mutable {
        for (long v : in) out.send(v);
        out.close();
      }));
    }
  }
  ~ring() {
    channels_.front().close();
    for (auto& f : forwarders_) f.join();
  }
  ring(const ring&) = delete;
  ring& operator=(const ring&) = delete;

  // pass: sends v around once and checks it came back.
  bool pass(long v) {
    channels_.front().send(v);
    return channels_.back().recv() == v;
  }

 private:
  std::vector<spindle::chan<long>> channels_;
  std::vector<spindle::handle<void>> forwarders_;
};

void context_switch_quiet(benchmark::State& state) {
  ring r(300);
  in_fiber(state, [&](benchmark::State& s) {
    long v = 0;
    for (auto _ : s) {
      if (!r.pass(++v)) s.SkipWithError("the token changed");
    }
  });
}
BENCHMARK(context_switch_quiet)->UseRealTime()->Unit(benchmark::kMicrosecond);

void context_switch_busy(benchmark::State& state) {
  ring r(30);
  std::atomic<bool> stop{false};
  std::vector<spindle::handle<void>> yielders;
  for (int i = 0; i < 300; ++i) {
    yielders.push_back(spindle::go([&stop] {
      while (!stop.load(std::memory_order_relaxed)) spindle::yield();
    }));
  }
  in_fiber(state, [&](benchmark::State& s) {
    long v = 0;
    for (auto _ : s) {
      for (int lap = 0; lap < 10; ++lap) {
        if (!r.pass(++v)) s.SkipWithError("the token changed");
      }
    }
  });
  stop = true;
  for (auto& y : yielders) y.join();
}
BENCHMARK(context_switch_busy)->UseRealTime()->Unit(benchmark::kMicrosecond);

// resident_kib: VmRSS from /proc/self/status.
long resident_kib() {
  std::FILE* status = std::fopen("/proc/self/status", "r");
  if (status == nullptr) return -1;
  char line[256];
  long kib = -1;
  while (std::fgets(line, sizeof line, status) != nullptr) {
    if (std::strncmp(line, "VmRSS:", 6) == 0) {
      kib = std::strtol(line + 6, nullptr, 10);
      break;
    }
  }
  std::fclose(status);
  return kib;
}

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// parked_memory: as the Go anchor: n fibers each report started, park
// receiving from one shared gate channel, and report done once it closes.
void parked_memory(benchmark::State& state) {
  constexpr long n = 1'000'000;
  for (auto _ : state) {
    spindle::chan<char> gate(0);
    spindle::wait_group started, finished;
    started.add(n);
    finished.add(n);
    long rss_before = resident_kib();
    auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < n; ++i) {
      spindle::go([gate, &started, &finished]() mutable {
        started.done();
        gate.recv();
        finished.done();
      });
    }
    started.wait();
    double spawn_all_ms = ms_since(t0);
    long rss_parked = resident_kib();
    auto t1 = std::chrono::steady_clock::now();
    gate.close();
    finished.wait();
    double wake_all_ms = ms_since(t1);
    state.counters["fibers"] = static_cast<double>(n);
    state.counters["rss_per_fiber_bytes"] =
        static_cast<double>(rss_parked - rss_before) * 1024.0 / static_cast<double>(n);
    state.counters["spawn_all_ms"] = spawn_all_ms;
    state.counters["wake_all_ms"] = wake_all_ms;
  }
}
BENCHMARK(parked_memory)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
