// tests/sched/compaction_test.cpp: under light load the runtime runs every
// fiber on one processor and lets the other workers rest; under load it
// activates them again (options::compaction; monitor.cpp, step 3).
//
// The program configures four processors whatever the machine has, so the
// rest/activate paths run on two-core CI machines too. Run with
// SPINDLE_COMPACTION=0 it checks that nothing is compacted.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <spindle/spindle.hpp>
#include <vector>

#include "context/switch.hpp"
#include "sched/core.hpp"
#include "wait.hpp"

using namespace std::chrono_literals;
using spindle_test::wait_until;

namespace {

constexpr std::size_t procs = 4;

// light_load: pairs of fibers: one sleeps 2 ms, then sends to the other,
// which answers (idle_cpu's shape, much lighter). Records, per pair, the
// round trips made and, for all, the processors the sleepers woke up on.
struct light_load {
  static constexpr int pairs = 4;
  std::atomic<bool> stop{false};
  std::atomic<long> trips[pairs] = {};
  std::atomic<unsigned> processors_seen{0};  // bit i: a sleeper ran on processor i
  std::vector<spindle::handle<void>> fibers;

  light_load() {
    for (int i = 0; i < pairs; ++i) {
      spindle::chan<int> ping(1), pong(1);
      fibers.push_back(spindle::go([this, i, ping, pong]() mutable {
        while (!stop.load()) {
          spindle::sleep_for(2ms);
          processors_seen.fetch_or(1u << spindle::detail::current_worker()->proc->index);
          ping.send(i);
          pong.recv();
          ++trips[i];
        }
        ping.close();
      }));
      fibers.push_back(spindle::go([ping, pong]() mutable {
        for (int v : ping) pong.send(int(v));
      }));
    }
  }
  ~light_load() {
    stop = true;
    for (auto& f : fibers) f.join();
  }

  // every_pair_progresses: each pair makes `n` more round trips.
  bool every_pair_progresses(long n) {
    long start[pairs];
    for (int i = 0; i < pairs; ++i) start[i] = trips[i].load();
    return wait_until([&] {
      for (int i = 0; i < pairs; ++i) {
        if (trips[i].load() < start[i] + n) return false;
      }
      return true;
    });
  }
};

// cpu_load: fibers that compute in 200 us steps and yield between them.
struct cpu_load {
  std::atomic<bool> stop{false};
  std::vector<spindle::handle<void>> fibers;

  explicit cpu_load(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      fibers.push_back(spindle::go([this] {
        while (!stop.load()) {
          const auto until = std::chrono::steady_clock::now() + 200us;
          while (std::chrono::steady_clock::now() < until) {
          }
          spindle::yield();
        }
      }));
    }
  }
  ~cpu_load() {
    stop = true;
    for (auto& f : fibers) f.join();
  }
};

std::size_t active() { return spindle::runtime_stats().procs_active; }

struct four_processors {
  four_processors() {
    spindle::options o = spindle::options_from_environment();
    o.procs = procs;
    spindle::configure(o);
  }
} configure_before_first_use;

}  // namespace

TEST_CASE("light load runs on one processor; load spreads it again") {
  if (!spindle::current_options().compaction) return;  // the next test case's run
  REQUIRE(spindle::runtime_stats().procs == procs);
  auto light = std::make_unique<light_load>();

  INFO("active processors: ", active());
  REQUIRE(wait_until([] { return active() == 1; }, 60s));
  CHECK(spindle::runtime_stats().compactions >= procs - 1);
  // Every pair survives the moves (fibers asleep on a processor's timers
  // when it was deactivated wake up and move), and after a while the
  // sleepers all run on processor 0. A crowded machine may activate a
  // processor for a moment: look until one window is clean.
  CHECK(light->every_pair_progresses(20));
  CHECK(wait_until(
      [&] {
        light->processors_seen = 0;
        light->every_pair_progresses(10);
        return light->processors_seen.load() == 1u && active() == 1;
      },
      60s));

  {
    cpu_load heavy(2 * procs);
    CHECK(wait_until([] { return active() == procs; }, 60s));
    CHECK(light->every_pair_progresses(10));
  }
  CHECK(wait_until([] { return active() == 1; }, 60s));
  CHECK(light->every_pair_progresses(10));
  light.reset();
  CHECK(spindle::runtime_stats().safety_net_wakes == 0);
}

TEST_CASE("with compaction off every processor stays active") {
  if (spindle::current_options().compaction) return;  // the previous test case's run
  REQUIRE(spindle::runtime_stats().procs == procs);
  light_load light;
  // 100 round trips per pair take at least 200 ms: twenty quiet load
  // windows, four times what deactivates a processor.
  CHECK(light.every_pair_progresses(100));
  CHECK(active() == procs);
  CHECK(spindle::runtime_stats().compactions == 0);
}
