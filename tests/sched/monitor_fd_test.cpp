// tests/sched/monitor_fd_test.cpp: the lazy monitor (lib/sched/monitor.cpp)
// when the program takes its timer descriptor away, as a daemon that closes
// or redirects every descriptor does. Its own program: afterwards the
// monitor never sleeps lazily again, which handoff_test's lazy-monitor test
// would notice.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <spindle/spindle.hpp>
#include <string>
#include <thread>
#include <vector>

#include "wait.hpp"

using namespace std::chrono_literals;

namespace {

// monitor_timer_fd: the runtime's one blocking timerfd (the event loops'
// timerfds are non-blocking); -1 if there is not exactly one.
int monitor_timer_fd() {
  int found = -1, count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code error;
    if (std::filesystem::read_symlink(entry.path(), error).string() != "anon_inode:[timerfd]") {
      continue;
    }
    const std::string fd = entry.path().filename().string();
    std::ifstream info("/proc/self/fdinfo/" + fd);
    std::string key;
    unsigned long flags = 0;
    while (info >> key) {
      if (key == "flags:") {
        info >> std::oct >> flags;
        break;
      }
    }
    if ((flags & O_NONBLOCK) == 0) {
      found = std::stoi(fd);
      ++count;
    }
  }
  return count == 1 ? found : -1;
}

void raw_sleep(std::chrono::nanoseconds d) {  // the kernel's nanosleep, not the runtime's
  timespec ts{static_cast<time_t>(d.count() / 1'000'000'000),
              static_cast<long>(d.count() % 1'000'000'000)};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

}  // namespace

TEST_CASE(
    "a program that replaces the monitor's timerfd leaves the monitor working, not spinning") {
  spindle::go([] {}).join();  // starts the runtime: its descriptors exist from here on
  const int timer_fd = monitor_timer_fd();
  REQUIRE(timer_fd >= 0);

  // A fiber that sleeps 1 ms at a time keeps a worker waking up, so the
  // monitor backs off and sleeps on its timerfd while workers tick for it.
  std::atomic<bool> stop{false};
  auto sleeper = spindle::go([&stop] {
    while (!stop.load()) spindle::sleep_for(1ms);
  });
  const auto worker_ticks = spindle::runtime_stats().worker_ticks;
  REQUIRE(spindle_test::wait_until(
      [worker_ticks] { return spindle::runtime_stats().worker_ticks > worker_ticks; }));

  // The program redirects the descriptor to /dev/null: a read returns at once.
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  REQUIRE(null_fd >= 0);
  REQUIRE(dup2(null_fd, timer_fd) == timer_fd);
  close(null_fd);

  // A rate, not a synchronisation: over 300 ms the monitor ticks at its
  // backed-off pace (about 30 ticks), or without the guard in a tight loop
  // (hundreds of thousands).
  const auto ticks_before = spindle::runtime_stats().monitor_ticks;
  std::this_thread::sleep_for(300ms);
  CHECK(spindle::runtime_stats().monitor_ticks - ticks_before < 1000);

  // And it still hands off processors whose fibers block in the kernel: a
  // fiber's sleeps end while a raw sleep holds every processor.
  std::atomic<bool> blockers_done{false};
  std::vector<spindle::handle<void>> blockers;
  for (std::size_t i = 0; i < spindle::current_options().procs; ++i) {
    blockers.push_back(spindle::go([&blockers_done] {
      raw_sleep(1500ms);
      blockers_done = true;
    }));
  }
  auto timed = spindle::go([&blockers_done] {
    for (int i = 0; i < 10; ++i) spindle::sleep_for(1ms);
    return !blockers_done.load();
  });
  CHECK(timed.join());
  for (auto& b : blockers) b.join();
  stop = true;
  sleeper.join();
}
