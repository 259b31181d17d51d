// lib/sched/monitor.cpp: the monitor thread: the balancer and the safety net.
//
// The monitor runs without a processor and never runs fibers. While any
// processor is busy it wakes every options::balance_interval (1 ms by
// default; after 50 ticks with nothing to do it backs off, doubling up to
// 10 ms) and:
//   - balances: while some processor is idle and another has at least two
//     fibers in its ring, it claims the idle one, moves half the loaded ring
//     (oldest first, at most 128) into its inbox and wakes it; when none is
//     idle, it moves fibers from the longest ring to the shortest once they
//     differ by more than max(4, mean/4). It never touches runnext.
//   - every 10 ms, runs the safety net: fibers queued (globally, or in an
//     idle processor's inbox or ring) on two scans in a row while every
//     processor sleeps mean a lost wake-up. It wakes a processor and counts
//     it in safety_net_wakes, which tests assert stays zero.
// When every processor is idle and the global queue is empty it deep-sleeps
// on its futex; the first worker to wake up wakes it (wait_for_work).
#include <sys/prctl.h>
#include <time.h>

#include <algorithm>
#include <chrono>

#include "os/futex.hpp"
#include "sched/scheduler.hpp"

namespace spindle::detail {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

constexpr milliseconds max_interval{10};
constexpr milliseconds safety_net_period{10};
constexpr int quiet_ticks_before_backoff = 50;

void sleep_for_interval(microseconds interval) noexcept {
  timespec ts{static_cast<time_t>(interval.count() / 1000000),
              static_cast<long>(interval.count() % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

}  // namespace

bool scheduler::all_idle() const noexcept {
  if (nidle_.load(std::memory_order_seq_cst) != static_cast<int>(processors_.size())) return false;
  if (!global_.empty()) return false;
  for (auto& p : processors_) {
    if (!p->inbox.empty() || p->ring.size() != 0) return false;
  }
  return true;
}

void scheduler::wake_monitor() noexcept {
  monitor_asleep_.store(0, std::memory_order_relaxed);
  monitor_word_.store(1, std::memory_order_release);
  futex_wake(monitor_word_, 1);
}

void scheduler::monitor_loop() {
  prctl(PR_SET_TIMERSLACK, 1000UL);  // 1 us: keep 1 ms ticks close to 1 ms
  microseconds interval = options_.balance_interval;
  int quiet_ticks = 0;
  auto next_safety_net = std::chrono::steady_clock::now() + safety_net_period;
  for (;;) {
    if (all_idle()) {
      monitor_word_.store(0, std::memory_order_relaxed);
      monitor_asleep_.store(1, std::memory_order_seq_cst);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (all_idle()) {
        const timespec one_second{1, 0};
        futex_wait(monitor_word_, 0, &one_second);
      }
      monitor_asleep_.store(0, std::memory_order_relaxed);
      interval = options_.balance_interval;
      quiet_ticks = 0;
      continue;
    }
    sleep_for_interval(interval);
    const bool moved = balance();
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_safety_net) {
      safety_net();
      next_safety_net = now + safety_net_period;
    }
    quiet_ticks = moved ? 0 : quiet_ticks + 1;
    interval = quiet_ticks > quiet_ticks_before_backoff
                   ? std::min<microseconds>(interval * 2, max_interval)
                   : options_.balance_interval;
  }
}

bool scheduler::balance() noexcept {
  bool moved = false;
  for (std::size_t round = 0; round < processors_.size(); ++round) {
    processor* longest = nullptr;
    processor* shortest = nullptr;
    std::uint32_t most = 0, least = run_queue::capacity + 1, total = 0;
    for (auto& p : processors_) {
      const std::uint32_t len = p->ring.size();
      total += len;
      if (len > most) most = len, longest = p.get();
      if (len < least) least = len, shortest = p.get();
    }
    if (longest == nullptr || most < 2) break;
    processor* target = nidle_.load(std::memory_order_relaxed) > 0 ? claim_idle() : nullptr;
    const bool claimed = target != nullptr;
    std::uint32_t amount = (most + 1) / 2;
    if (!claimed) {
      const std::uint32_t mean = total / static_cast<std::uint32_t>(processors_.size());
      if (most - least <= std::max<std::uint32_t>(4, mean / 4) || shortest == longest) break;
      target = shortest;
      amount = (most - mean) / 2;
    }
    fiber_batch batch;
    longest->ring.grab(batch, std::max<std::uint32_t>(amount, 1));
    const std::uint32_t count = batch.size;
    target->inbox.push_all(batch);
    balancer_moves_.fetch_add(count, std::memory_order_relaxed);
    // A busy target may be on its way to sleep: the submitter's side of the
    // idle protocol (push, fence, look at the idle set) applies to it too.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (claimed || leave_idle_set(*target)) wake_processor(*target, wake_inbox);
    moved = moved || count > 0;
  }
  return moved;
}

void scheduler::safety_net() noexcept {
  static bool stuck_last_scan = false;  // the monitor thread only
  const bool everyone_asleep = nidle_.load(std::memory_order_seq_cst) ==
                                   static_cast<int>(processors_.size()) &&
                               nsearching_.load(std::memory_order_seq_cst) == 0;
  bool work_waiting = !global_.empty();
  if (everyone_asleep) {
    for (auto& p : processors_) {
      work_waiting = work_waiting || !p->inbox.empty() || p->ring.size() != 0;
    }
  }
  const bool stuck = everyone_asleep && work_waiting;
  if (stuck && stuck_last_scan) {
    safety_net_wakes_.fetch_add(1, std::memory_order_relaxed);
    if (processor* p = claim_idle()) wake_processor(*p, wake_inbox);
  }
  stuck_last_scan = stuck;
}

}  // namespace spindle::detail
