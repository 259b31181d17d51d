// lib/sched/monitor.cpp: the monitor thread: handoff of stuck processors,
// the balancer, and the safety net.
//
// The monitor runs without a processor and never runs fibers. While any
// processor is busy it wakes every options::balance_interval (1 ms by
// default; after 50 ticks with nothing to do it backs off, doubling up to
// 10 ms), or sooner when poked (a fiber was queued globally while every
// processor was busy and one looked stuck), and:
//
//   1. retakes stuck processors (retake_stuck_processors). Each processor
//      publishes `switches`, stored by its owner at every fiber switch; the
//      monitor keeps a private copy and the time it last changed. A
//      processor whose owner is in user code (owner_word busy bit clear)
//      and whose counter has not moved for options::blocked_threshold is
//      stalled. The owner thread's CPU clock over the stall tells a thread
//      blocked in the kernel (under a fifth of a CPU: a raw read, nanosleep, a
//      page fault, an OS mutex) from a hog (computing; even on a crowded
//      machine a spinning thread gets more than a fifth of a CPU). If fibers wait for the
//      processor (its ring, runnext or inbox, or the global queue while no
//      processor is idle), or its event loop has something only a poll will
//      do (a due timer, a submission, a ready descriptor), the processor is handed to a spare
//      thread (handoff.cpp): at once when blocked, after options::hog_threshold when hogging (and
//      only while fewer than 2 * procs hogs hold extra threads). A hog is also asked to yield
//      (preempt_requested), which this_fiber::check_preempt() honours.
//   2. balances: while some processor is idle and another has at least two
//      fibers in its ring, it claims the idle one, moves half the loaded ring
//      (oldest first, at most 128) into its inbox and wakes it; when none is
//      idle, it moves fibers from the longest ring to the shortest once they
//      differ by more than max(4, mean/4). It never touches runnext. It
//      leaves alone a processor whose fibers contend for a primitive's lock
//      with another processor's: a fanout on one channel runs faster on one
//      processor than spread (contention_watch.hpp: a hold-off that doubles
//      each time spreading brings the contention back).
//   3. compacts (adjust_active; BEAM's scheduler compaction): only
//      processors [0, active) run fibers. Every 10 ms it compares the
//      process's CPU time with the wall time: if the process used less than
//      half of one processor fewer than are active for five windows in a row
//      (50 ms), the last active processor is deactivated: it sends its
//      queued fibers to the global queue and rests in its loop, which still
//      fires its timers and completes its I/O, forwarding the fibers those
//      ready to the active processors (scheduler.cpp, rest_while_inactive).
//      One is activated again at once when the window shows more than three
//      quarters of every active processor used, or when fibers wait on two
//      ticks in a row while every active processor is busy and has not
//      slept since the last tick. Why: with timers and light message
//      passing, each awake processor pays its own wake-ups (a timerfd, a
//      context switch) for the same work: idle_cpu uses about half the CPU
//      on one processor that it does on two (docs/design.md, "Compaction").
//   4. every 10 ms, runs the safety net: fibers queued (globally, or in an
//      idle processor's inbox or ring) on two scans in a row while every
//      processor sleeps mean a lost wake-up. It wakes a processor and counts
//      it in safety_net_wakes, which tests assert stays zero.
// When every processor is idle and the global queue is empty, and no worker
// woke up since its last tick, it deep-sleeps on its futex; the first worker
// to wake up wakes it (wait_for_work). Processors that sleep and wake often
// (timers, I/O) keep it on its ordinary, backed-off ticks instead, so their
// wake-ups do not each wake the monitor too.
//
// The lazy monitor. Once backed off to 10 ms, the monitor's own wake-up is
// most of its cost: on a virtual machine a thread woken after 10 ms idle
// costs 40-70 us of CPU time, more than the tick itself by far. So while
// backed off it sleeps on a timerfd set for one interval after the last
// tick, and a worker that runs out of work once the tick is due (one woken
// by a timer or I/O, say, on its way back to sleep) runs the tick in its
// stead (tick_for_monitor), then sets the timerfd one interval further:
// re-arming does not wake the monitor. It ticks then, not as it wakes, so
// its own ring is empty: the balancer would otherwise see the burst a wake-up
// just queued as a backlog to spread. Ticks come as
// often as before (a worker runs them up to 2 ms early), so a processor that
// gets stuck is seen as soon as before; if no worker wakes up in time (one is
// stuck, or all sleep), the timerfd wakes the monitor. A tick a worker runs
// that acts (a handoff, a move, a compaction) or finds a stalled processor
// still within its threshold pokes the monitor, which then ticks at its
// eager pace. tick_mutex_ serialises ticks, so the tick's state (watches,
// the balancer's memory, the thread-creation tokens) has one owner at a
// time. Pokes set monitor_word_ and, when the monitor is lazy, fire the
// timerfd; each side stores, then loads the other's word (seq_cst), so a
// poke is never lost between the monitor's decision and its sleep, and a
// worker that re-arms the timerfd re-fires it if a poke came meanwhile.
// A program that closes or replaces descriptors it does not own (a daemon's
// close-them-all loop) can take the timerfd away; the read then fails or
// returns at once, and the monitor stops being lazy for good (with one
// warning) instead of ticking in a tight loop.
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <time.h>

#include <algorithm>
#include <chrono>

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>

#include <cstdio>
#include <cstring>
#include <set>
#include <utility>
#include <vector>

#include "io/event_loop.hpp"
#include "os/futex.hpp"
#include "sched/contention_watch.hpp"
#include "sched/handoff.hpp"
#include "sched/scheduler.hpp"

namespace spindle::detail {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

constexpr milliseconds max_interval{10};
constexpr std::int64_t max_interval_ns = std::chrono::nanoseconds(max_interval).count();
constexpr milliseconds safety_net_period{10};
constexpr int quiet_ticks_before_backoff = 50;

constexpr std::int64_t min_stall_tick_ns = 50'000;

// The lazy monitor: a worker runs a tick this much before it falls due.
constexpr std::int64_t lazy_tick_early_ns = 2'000'000;

// Compaction (step 3).
constexpr std::int64_t load_window_ns = 10'000'000;
constexpr int quiet_windows_before_deactivating = 5;
constexpr double deactivate_below = 0.5;  // of one processor fewer
constexpr double activate_above = 0.75;   // of the active processors
constexpr int busy_ticks_before_activating = 2;

// load_watch: the monitor's view of the recent load (step 3).
struct load_watch {
  std::int64_t window_start_ns = 0;
  std::int64_t window_cpu_ns = 0;
  int quiet_windows = 0;
  int busy_ticks = 0;
  std::vector<std::uint32_t> naps;  // each processor's naps at the last tick
};

load_watch& load(std::size_t procs) {
  static auto* watch = new load_watch{0, 0, 0, 0, std::vector<std::uint32_t>(procs)};
  return *watch;  // the tick only (tick_mutex_); never destroyed (see watches())
}

std::int64_t process_cpu_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// stall_watch: what the monitor remembers of one processor.
struct stall_watch {
  std::uint64_t switches = 0;
  std::uint64_t owner_word = 0;
  std::int64_t since_ns = 0;       // when switches last changed (or the owner left the runtime)
  std::int64_t cpu_start_ns = -1;  // the owner thread's CPU clock at since_ns; -1: not read
};

// watches: the monitor's memory of every processor. Never destroyed (the
// monitor thread outlives static destruction at exit), like the scheduler.
std::vector<stall_watch>& watches(std::size_t procs) {
  static auto* all = new std::vector<stall_watch>(procs);  // the tick only (tick_mutex_)
  return *all;
}

std::int64_t thread_cpu_ns(const worker* w) noexcept {
  if (w == nullptr || !w->cpu_clock_ready.load(std::memory_order_acquire)) return -1;
  timespec ts;
  if (clock_gettime(w->cpu_clock, &ts) != 0) return -1;
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// waiting_for_cpu: whether the kernel has w's thread runnable ('R' in
// /proc/self/task/TID/stat) rather than asleep. Read only when a handoff is
// about to be decided (it costs tens of microseconds).
bool waiting_for_cpu(const worker* w) noexcept {
  if (w == nullptr || w->tid == 0) return false;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(w->tid));
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char text[512];
  const ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  if (n <= 0) return false;
  text[n] = '\0';
  const char* end_of_name = std::strrchr(text, ')');  // the state follows "(comm) "
  return end_of_name != nullptr && end_of_name[1] == ' ' && end_of_name[2] == 'R';
}

// wait_for_tick: sleeps up to `timeout_ns`, or until poked.
void wait_for_tick(std::atomic<std::uint32_t>& word, std::int64_t timeout_ns) noexcept {
  const timespec ts{static_cast<time_t>(timeout_ns / 1'000'000'000),
                    static_cast<long>(timeout_ns % 1'000'000'000)};
  futex_wait(word, 0, &ts);
  word.store(0, std::memory_order_relaxed);
}

}  // namespace

bool scheduler::all_idle() const noexcept {
  if (nidle_.load(std::memory_order_seq_cst) != active_.load(std::memory_order_relaxed))
    return false;
  if (!global_.empty()) return false;
  for (auto& p : processors_) {
    if (!p->inbox.empty() || p->ring.size() != 0) return false;
  }
  return true;
}

void scheduler::wake_monitor() noexcept {
  monitor_asleep_.store(0, std::memory_order_relaxed);
  poke_monitor();
}

void scheduler::arm_monitor_timer(std::int64_t at_ns) noexcept {
  const itimerspec spec{
      {0, 0},
      {static_cast<time_t>(at_ns / 1'000'000'000), static_cast<long>(at_ns % 1'000'000'000)}};
  timerfd_settime(monitor_timer_fd_, TFD_TIMER_ABSTIME, &spec, nullptr);
}

// plan_lazy_tick: the next tick falls due at due_ns: workers may run it
// from lazy_tick_early_ns before, and the timerfd wakes the monitor at it.
void scheduler::plan_lazy_tick(std::int64_t due_ns) noexcept {
  next_lazy_tick_ns_.store(due_ns - lazy_tick_early_ns, std::memory_order_relaxed);
  arm_monitor_timer(due_ns);
}

// fire_monitor_timer: expires the timerfd now (1 ns on the clock is long
// past; 0 would disarm it).
void scheduler::fire_monitor_timer() noexcept { arm_monitor_timer(1); }

void scheduler::monitor_loop() {
  pthread_setname_np(pthread_self(), "spindle-monitor");
  prctl(PR_SET_TIMERSLACK, 1000UL);  // 1 us: keep short ticks short
  microseconds interval = options_.balance_interval;
  int quiet_ticks = 0;
  std::int64_t next_stall_check_ns = INT64_MAX;
  std::uint64_t wakes_seen = 0;
  std::int64_t woken_seen_ns = 0;  // when the monitor last saw wakes_ change
  std::int64_t last_tick_ns = steady_now_ns();
  for (;;) {
    // Deep sleep only once no worker woke up for a whole backed-off tick: a
    // program that wakes every millisecond or so (timers, I/O) keeps the
    // monitor on its 10 ms ticks instead of poking it at every wake.
    const std::uint64_t wakes = wakes_.load(std::memory_order_relaxed);
    if (wakes != std::exchange(wakes_seen, wakes)) woken_seen_ns = steady_now_ns();
    const bool quiet = steady_now_ns() - woken_seen_ns >= max_interval_ns;
    if (quiet && all_idle()) {
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
    const std::int64_t interval_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(interval).count();
    const bool lazy = interval == max_interval && next_stall_check_ns == INT64_MAX &&
                      monitor_timer_fd_ >= 0 && !monitor_timer_lost_;
    bool poked = false;
    if (lazy) {
      poked = sleep_while_workers_tick(last_tick_ns, interval_ns);
    } else {
      const std::int64_t until_stall_check = next_stall_check_ns - steady_now_ns();
      wait_for_tick(monitor_word_, std::clamp(until_stall_check, min_stall_tick_ns, interval_ns));
    }
    const std::int64_t now = steady_now_ns();
    next_stall_check_ns = INT64_MAX;
    bool acted;
    {
      std::lock_guard lock(tick_mutex_);  // a worker's tick in progress finishes first
      monitor_lazy_.store(false, std::memory_order_relaxed);
      acted = monitor_tick(now, next_stall_check_ns);
    }
    monitor_ticks_.fetch_add(1, std::memory_order_relaxed);
    last_tick_ns = now;
    quiet_ticks = acted || poked ? 0 : quiet_ticks + 1;
    interval = quiet_ticks > quiet_ticks_before_backoff
                   ? std::min<microseconds>(interval * 2, max_interval)
                   : options_.balance_interval;
  }
}

// monitor_tick: steps 1-4 of the design comment. Caller holds tick_mutex_.
bool scheduler::monitor_tick(std::int64_t now, std::int64_t& next_stall_check_ns) {
  static std::int64_t next_safety_net_ns = 0;  // guarded by tick_mutex_
  bool acted = retake_stuck_processors(now, next_stall_check_ns);
  acted = balance(now) || acted;
  acted = adjust_active(now) || acted;
  if (now >= next_safety_net_ns) {
    safety_net();
    next_safety_net_ns = now + std::chrono::nanoseconds(safety_net_period).count();
  }
  return acted;
}

// sleep_while_workers_tick: the lazy monitor's sleep (see the design
// comment): until one interval after the last tick, pushed back by every
// tick a worker runs meanwhile, or until poked. Returns whether it was poked.
bool scheduler::sleep_while_workers_tick(std::int64_t last_tick_ns, std::int64_t interval_ns) {
  plan_lazy_tick(last_tick_ns + interval_ns);
  monitor_lazy_.store(true, std::memory_order_seq_cst);
  if (monitor_word_.load(std::memory_order_seq_cst) == 0 && !await_monitor_timer()) {
    monitor_timer_lost_ = true;
    std::fprintf(stderr,
                 "spindle: warning: the monitor's timer descriptor (%d) was closed or changed "
                 "by the program; the monitor no longer sleeps on it\n",
                 monitor_timer_fd_);
  }
  return monitor_word_.exchange(0, std::memory_order_relaxed) != 0;
}

// await_monitor_timer: blocks until the timerfd expires (or is fired);
// false if the descriptor no longer behaves as the runtime's timerfd.
bool scheduler::await_monitor_timer() noexcept {
  for (;;) {
    std::uint64_t expirations;
    const ssize_t n = read(monitor_timer_fd_, &expirations, sizeof expirations);
    if (n == static_cast<ssize_t>(sizeof expirations)) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

// tick_for_monitor: a worker that ran out of work runs the lazy monitor's tick
// if it is due and no other tick runs, then pushes the monitor's own wake-up
// one interval further. A tick that acted, or that leaves a stalled
// processor to be looked at again before then, pokes the monitor instead.
void scheduler::tick_for_monitor(std::int64_t now) {
  std::unique_lock lock(tick_mutex_, std::try_to_lock);
  if (!lock.owns_lock() || !monitor_lazy_.load(std::memory_order_relaxed) ||
      now < next_lazy_tick_ns_.load(std::memory_order_relaxed)) {
    return;
  }
  std::int64_t next_stall_check_ns = INT64_MAX;
  const bool acted = monitor_tick(now, next_stall_check_ns);
  worker_ticks_.fetch_add(1, std::memory_order_relaxed);
  if (acted || next_stall_check_ns != INT64_MAX) {
    poke_monitor();
    return;
  }
  plan_lazy_tick(now + max_interval_ns);
  if (monitor_word_.load(std::memory_order_seq_cst) != 0) fire_monitor_timer();  // a poke came
}

bool scheduler::work_waiting(processor& p) const noexcept {
  return p.ring.size() != 0 || p.runnext.load(std::memory_order_relaxed) != nullptr ||
         !p.inbox.empty() ||
         (is_active(p) && !global_.empty() && nidle_.load(std::memory_order_relaxed) == 0 &&
          nsearching_.load(std::memory_order_relaxed) == 0) ||
         p.loop->needs_service(steady_now_ns());
}

// retake_stuck_processors: step 1 of the design comment. Sets
// `next_check_ns` to when a stalled processor with waiting work reaches its
// threshold, so the monitor looks again then rather than a tick later.
bool scheduler::retake_stuck_processors(std::int64_t now, std::int64_t& next_check_ns) {
  const std::int64_t blocked_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.blocked_threshold).count();
  const std::int64_t hog_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.hog_threshold).count();
  std::vector<stall_watch>& watch = watches(processors_.size());
  bool acted = false, suspect = false;
  for (auto& pp : processors_) {
    processor& p = *pp;
    stall_watch& sw = watch[static_cast<std::size_t>(p.index)];
    const std::uint64_t word = p.owner_word.load(std::memory_order_acquire);
    const std::uint64_t switches = p.switches.load(std::memory_order_relaxed);
    worker* owner = p.owner.load(std::memory_order_relaxed);
    if ((word & owner_busy) != 0 || switches != sw.switches || word != sw.owner_word) {
      sw = {switches, word, now, (word & owner_busy) != 0 ? -1 : thread_cpu_ns(owner)};
      continue;
    }
    if (sw.cpu_start_ns < 0) {
      sw.cpu_start_ns = thread_cpu_ns(owner);
      sw.since_ns = now;
    }
    suspect = true;
    const std::int64_t stalled = now - sw.since_ns;
    const bool hinted = p.blocking_section.load(std::memory_order_relaxed) != 0;
    if (!work_waiting(p)) continue;
    if (stalled < blocked_ns && !hinted) {
      next_check_ns = std::min(next_check_ns, sw.since_ns + blocked_ns);
      continue;
    }
    const std::int64_t cpu = thread_cpu_ns(owner);
    const std::int64_t cpu_used = cpu >= 0 && sw.cpu_start_ns >= 0 ? cpu - sw.cpu_start_ns : 0;
    // Blocked: asleep in the kernel, little CPU used. A thread that used
    // little CPU but is runnable, waiting for a CPU (a crowded machine),
    // is not blocked: another thread would only crowd the CPUs further. A hog
    // is handed off once it has *used* hog_threshold of CPU time since its
    // last switch, so a short computation slowed down by a crowded machine
    // never counts.
    const bool hog = !hinted && (5 * cpu_used >= stalled || waiting_for_cpu(owner));
    if (hog) {
      if (cpu_used < hog_ns) {
        next_check_ns = std::min(next_check_ns, now + (hog_ns - cpu_used));
        continue;
      }
      p.preempt_requested.store(1, std::memory_order_relaxed);
      if (hogs_running_.load(std::memory_order_relaxed) >= 2 * static_cast<int>(processors_.size()))
        continue;
    }
    if (hand_off(p, word, hog)) {
      acted = true;
      if (options_.report_stalls) report_stall(p, hog, stalled);
    }
  }
  stall_suspected_.store(suspect, std::memory_order_relaxed);
  return acted;
}

// report_stall: one line per spawn site, the first time (options::report_stalls).
void scheduler::report_stall(processor& p, bool hog, std::int64_t stalled_ns) {
  static auto* reported = new std::set<const void*>;  // the tick only; never destroyed
  const void* site = p.running_spawn_site.load(std::memory_order_relaxed);
  if (!reported->insert(site).second) return;
  Dl_info info{};
  const char* symbol = dladdr(site, &info) != 0 && info.dli_sname ? info.dli_sname : "?";
  std::fprintf(stderr,
               "spindle: fiber %llu (spawned from %s at %p) %s its thread for %.1f ms; "
               "processor %d was handed to another thread (reported once per spawn site)\n",
               static_cast<unsigned long long>(p.running_fiber_id.load(std::memory_order_relaxed)),
               symbol, site, hog ? "computed without yielding, holding" : "blocked",
               static_cast<double>(stalled_ns) / 1e6, p.index);
}

// balance: step 2 of the design comment. A ring counts as loaded with two
// fibers, or with one if its processor has not switched since the last pass
// (its running fiber holds it: the queued one would wait for a handoff),
// unless its fibers were found contending for a primitive's lock
// (contention_watch.hpp).
bool scheduler::balance(std::int64_t now) noexcept {
  // The monitor's own memory of each processor, kept across passes (no
  // allocation per tick); never destroyed (see watches()).
  static auto& last_switches = *new std::vector<std::uint64_t>(processors_.size());
  static auto& contention = *new std::vector<contention_watch>(processors_.size());
  static auto& stuck = *new std::vector<bool>(processors_.size());
  static auto& held = *new std::vector<bool>(processors_.size());
  static std::int64_t last_pass_ns = now;
  const std::int64_t elapsed = now - std::exchange(last_pass_ns, now);
  for (auto& p : processors_) {
    const auto i = static_cast<std::size_t>(p->index);
    const std::uint64_t switches = p->switches.load(std::memory_order_relaxed);
    const std::uint64_t switched = switches - last_switches[i];
    stuck[i] = switched == 0;
    last_switches[i] = switches;
    if (contention[i].observe(p->lock_wait_ns.load(std::memory_order_relaxed), now)) {
      contention_holds_.fetch_add(1, std::memory_order_relaxed);
    }
    held[i] = !contention[i].may_spread(now) && !long_backlog(p->ring.size(), switched, elapsed);
    p->spread_held.store(held[i], std::memory_order_relaxed);
  }
  bool moved = false;
  for (std::size_t round = 0; round < processors_.size(); ++round) {
    processor* longest = nullptr;
    processor* shortest = nullptr;
    std::uint32_t most = 0, least = run_queue::capacity + 1, total = 0;
    const int active = active_.load(std::memory_order_relaxed);
    for (auto& p : processors_) {
      if (p->index >= active) break;
      const std::uint32_t len = p->ring.size();
      total += len;
      const auto i = static_cast<std::size_t>(p->index);
      const bool loaded = (len >= 2 || (len == 1 && stuck[i])) && !held[i];
      if (loaded && len > most) most = len, longest = p.get();
      if (len < least) least = len, shortest = p.get();
    }
    if (longest == nullptr) break;
    processor* target = nidle_.load(std::memory_order_relaxed) > 0 ? claim_idle() : nullptr;
    const bool claimed = target != nullptr;
    std::uint32_t amount = (most + 1) / 2;
    if (!claimed) {
      const std::uint32_t mean = total / static_cast<std::uint32_t>(active);
      if (most - least <= std::max<std::uint32_t>(4, mean / 4) || shortest == longest) break;
      target = shortest;
      amount = (most - mean) / 2;
    }
    fiber_batch batch;
    longest->ring.grab(batch, std::max<std::uint32_t>(amount, 1));
    const std::uint32_t count = batch.size;
    target->inbox.push_all(batch);
    balancer_moves_.fetch_add(count, std::memory_order_relaxed);
    contention[static_cast<std::size_t>(longest->index)].spread();
    // A busy target may be on its way to sleep: the submitter's side of the
    // idle protocol (push, fence, look at the idle set) applies to it too.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (claimed || leave_idle_set(*target)) wake_processor(*target, wake_inbox);
    moved = moved || count > 0;
  }
  return moved;
}

void scheduler::safety_net() noexcept {
  static bool stuck_last_scan = false;  // the tick only (tick_mutex_)
  const int active = active_.load(std::memory_order_relaxed);
  const bool everyone_asleep = nidle_.load(std::memory_order_seq_cst) == active &&
                               nsearching_.load(std::memory_order_seq_cst) == 0;
  bool work_waiting = !global_.empty();
  if (everyone_asleep) {
    for (int i = 0; i < active; ++i) {
      const processor& p = *processors_[static_cast<std::size_t>(i)];
      work_waiting = work_waiting || !p.inbox.empty() || p.ring.size() != 0;
    }
  }
  const bool stuck =
      everyone_asleep && work_waiting && pushes_in_flight_.load(std::memory_order_acquire) == 0;
  if (stuck && stuck_last_scan) {
    safety_net_wakes_.fetch_add(1, std::memory_order_relaxed);
    if (processor* p = claim_idle()) wake_processor(*p, wake_inbox);
  }
  stuck_last_scan = stuck;
}

// adjust_active: step 3 of the design comment. Returns whether it changed
// the number of active processors.
bool scheduler::adjust_active(std::int64_t now) {
  if (!options_.compaction || processors_.size() == 1) return false;
  load_watch& watch = load(processors_.size());
  const int active = active_.load(std::memory_order_relaxed);
  const int procs = static_cast<int>(processors_.size());
  watch.busy_ticks = saturated() ? watch.busy_ticks + 1 : 0;
  if (watch.busy_ticks >= busy_ticks_before_activating && active < procs) {
    activate_next();
    watch.busy_ticks = watch.quiet_windows = 0;
    return true;
  }
  if (now - watch.window_start_ns < load_window_ns) return false;
  const std::int64_t cpu = process_cpu_ns();
  const double used = static_cast<double>(cpu - watch.window_cpu_ns) /
                      static_cast<double>(now - watch.window_start_ns);
  const bool first_window = watch.window_start_ns == 0;
  watch.window_start_ns = now;
  watch.window_cpu_ns = cpu;
  if (first_window) return false;
  if (used > activate_above * active && active < procs) {
    activate_next();
    watch.quiet_windows = 0;
    return true;
  }
  if (active > 1 && used < deactivate_below * (active - 1)) {
    if (++watch.quiet_windows < quiet_windows_before_deactivating) return false;
    deactivate_last();
    watch.quiet_windows = 0;
    return true;
  }
  watch.quiet_windows = 0;
  return false;
}

// saturated: fibers wait (in the global queue, or two in an active ring)
// while no active processor is idle and one has not slept since the last
// tick.
bool scheduler::saturated() noexcept {
  load_watch& watch = load(processors_.size());
  const int active = active_.load(std::memory_order_relaxed);
  bool waiting = !global_.empty(), unrested = false;
  for (int i = 0; i < active; ++i) {
    processor& p = *processors_[static_cast<std::size_t>(i)];
    const std::uint32_t naps = p.naps.load(std::memory_order_relaxed);
    const bool napped = naps != std::exchange(watch.naps[static_cast<std::size_t>(i)], naps);
    unrested = unrested || !napped;
    waiting = waiting || (!napped && p.ring.size() >= 2);
  }
  return waiting && unrested && nidle_.load(std::memory_order_relaxed) == 0;
}

// activate_next: the lowest inactive processor runs fibers again; its
// worker leaves rest_while_inactive and looks for work like any other. Only
// its loop is woken, not its wake word: once the lock is released the
// processor may join the idle set (wake word := none) before a store here,
// which would then end its W5 while it is still in the set (it would join
// twice) or overwrite a claimer's wake_search (nsearching would stay 1).
// The rest loop reads active_ after every poll; it needs no word.
void scheduler::activate_next() noexcept {
  processor* p;
  {
    std::lock_guard lock(idle_lock_);
    const int active = active_.load(std::memory_order_relaxed);
    if (active == static_cast<int>(processors_.size())) return;
    p = processors_[static_cast<std::size_t>(active)].get();
    active_.store(active + 1, std::memory_order_seq_cst);
  }
  p->loop->wake();
}

// deactivate_last: the highest active processor stops running fibers. An
// idle one leaves the idle set with the change (so no waker claims it) and
// is woken to go and rest; a busy one rests at its next scheduling point.
void scheduler::deactivate_last() noexcept {
  processor* p;
  bool was_idle;
  {
    std::lock_guard lock(idle_lock_);
    const int active = active_.load(std::memory_order_relaxed);
    if (active <= 1) return;
    p = processors_[static_cast<std::size_t>(active - 1)].get();
    active_.store(active - 1, std::memory_order_seq_cst);
    was_idle = p->in_idle_set;
    if (was_idle) remove_from_idle_set_locked(*p);
  }
  compactions_.fetch_add(1, std::memory_order_relaxed);
  if (was_idle) wake_processor(*p, wake_inbox);
}

}  // namespace spindle::detail
