// tests/sched/runtime_test.cpp: options, the environment, idleness.
#include <doctest/doctest.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdlib>
#include <spindle/spindle.hpp>
#include <thread>

namespace {
double cpu_seconds() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
         static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}
}  // namespace

TEST_CASE("options come from the environment") {
  setenv("SPINDLE_STACK_SIZE", "64K", 1);
  setenv("SPINDLE_SPIN_US", "7", 1);
  setenv("SPINDLE_COMPACTION", "0", 1);
  const spindle::options o = spindle::options_from_environment();
  CHECK(o.stack_size == 64 * 1024);
  CHECK(o.spin.count() == 7);
  CHECK_FALSE(o.compaction);
  unsetenv("SPINDLE_COMPACTION");
  CHECK(spindle::options_from_environment().compaction);
  setenv("SPINDLE_STACK_SIZE", "lots", 1);
  CHECK_THROWS_AS(spindle::options_from_environment(), spindle::usage_error);
  unsetenv("SPINDLE_STACK_SIZE");
  unsetenv("SPINDLE_SPIN_US");
}

TEST_CASE("the runtime starts on first use and then refuses configure") {
  spindle::go([] {}).join();
  const spindle::options o = spindle::current_options();
  CHECK(o.procs >= 1);
  if (const char* procs = std::getenv("SPINDLE_PROCS")) {
    CHECK(o.procs == std::strtoul(procs, nullptr, 10));
  }
  CHECK_THROWS_WITH_AS(spindle::configure(o), "spindle::configure after the runtime started",
                       spindle::usage_error);
}

TEST_CASE("an idle runtime burns no CPU to speak of") {
  for (int i = 0; i < 1000; ++i) spindle::go([] { spindle::yield(); }).join();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let workers and monitor settle
  const double before = cpu_seconds();
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(1));  // the idle period being measured
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double used = cpu_seconds() - before;
  CHECK(used < 0.05 * wall);
}
