// spindle/runtime.hpp: the runtime's knobs, counters and panic handler.
//
// The runtime starts by itself on first use (the first go(), or the first
// blocking call made from a plain thread that needs it). Everything here is
// optional: a program that never includes this header gets the defaults,
// which the environment can still override.
//
//   spindle::options opts;      // defaults, then SPINDLE_* environment
//   opts.procs = 4;
//   spindle::configure(opts);   // before first use
//   spindle::go([] { ... });
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string_view>

namespace spindle {

// options: every runtime setting, with its default and environment variable.
// A zero means "choose for me" where the comment says so.
struct options {
  // procs: number of processors, i.e. fibers running in parallel.
  // 0 = the CPUs this process may use (affinity mask, cgroup CPU quota).
  // Environment: SPINDLE_PROCS.
  std::size_t procs = 0;

  // stack_size: usable bytes of a fiber stack unless go() asks otherwise;
  // rounded up to whole pages. Memory is committed only as the fiber touches
  // it. Environment: SPINDLE_STACK_SIZE (bytes, or with a K/M suffix).
  std::size_t stack_size = 256 * 1024;

  // guarded_stacks: how many stacks get a guard page (a stack overflow then
  // faults at once and is reported). On a kernel with guard regions (Linux
  // 6.13 and later) a guard costs no memory mapping; otherwise it is an
  // mprotect'ed page that costs two of the kernel's vm.max_map_count budget
  // (65,530 by default). Stacks past this count run unguarded, and an
  // overflow is caught later (at the fiber's next switch or its exit;
  // docs/design.md, "Stacks"). auto_guarded_stacks = every stack with guard
  // regions, else a quarter of vm.max_map_count; 0 = none.
  // Environment: SPINDLE_GUARDED_STACKS.
  static constexpr std::size_t auto_guarded_stacks = static_cast<std::size_t>(-1);
  std::size_t guarded_stacks = auto_guarded_stacks;

  // guard_regions: make guard pages with the kernel's guard regions
  // (madvise MADV_GUARD_INSTALL) where it has them; false = always with
  // mprotect, within the mapping budget above (current_options() reports
  // false where the kernel has none). Environment: SPINDLE_GUARD_REGIONS=0.
  bool guard_regions = true;

  // spin: how long an idle worker keeps looking for work before it sleeps.
  // Environment: SPINDLE_SPIN_US.
  std::chrono::microseconds spin{20};

  // balance_interval: how often the monitor's balancer looks at the run
  // queues while any processor is busy. Environment: SPINDLE_BALANCE_US.
  std::chrono::microseconds balance_interval{1000};

  // blocked_threshold: a processor whose fiber has not switched for this long
  // while its thread uses little CPU (blocked in a system call, a page fault,
  // an OS lock) is handed, queue and all, to another thread if work waits.
  // Environment: SPINDLE_BLOCKED_US.
  std::chrono::microseconds blocked_threshold{1000};

  // hog_threshold: the same for a fiber computing without a switch; it is
  // also asked to yield (this_fiber::check_preempt). Environment: SPINDLE_HOG_US.
  std::chrono::microseconds hog_threshold{5000};

  // max_threads: the most worker threads the runtime will run at once,
  // spares and threads stuck in system calls included. Reaching it prints
  // one diagnostic; stuck processors then wait for a thread to come back.
  // Environment: SPINDLE_MAX_THREADS.
  std::size_t max_threads = 10000;

  // retire_after: a spare worker thread idle this long exits, as long as more
  // than procs + 2 worker threads remain. Environment: SPINDLE_RETIRE_MS.
  std::chrono::milliseconds retire_after{10000};

  // timer_slack: how late a timer may fire (never early): a loop wakes at
  // the latest deadline within this much of the earliest and fires every
  // timer due, so timers set close together cost one wake-up.
  // Environment: SPINDLE_TIMER_SLACK_US.
  std::chrono::microseconds timer_slack{200};

  // report_stalls: print one line per spawn site the first time one of its
  // fibers blocks or hogs a thread long enough to cause a handoff.
  // Environment: SPINDLE_REPORT_STALLS=1.
  bool report_stalls = false;

  // compaction: under light load, run every fiber on as few processors as
  // the load needs and let the other workers sleep (Erlang's scheduler
  // compaction). The monitor deactivates a processor when the process has
  // used less CPU than half of one fewer processor for 50 ms, and activates
  // one again within milliseconds when the active ones are saturated or
  // fibers queue up. Environment: SPINDLE_COMPACTION=0 turns it off.
  bool compaction = true;
};

// options_from_environment: the defaults above, overridden by SPINDLE_*
// variables. Throws usage_error on a malformed value.
options options_from_environment();

// configure: sets the runtime options. Must be called before the runtime
// starts; afterwards it throws usage_error("spindle::configure after the
// runtime started"). Does not block.
void configure(const options& opts);

// current_options: the options in force (starts the runtime if needed).
options current_options();

// stats: counters of the running runtime, for tests and diagnostics.
struct stats {
  std::size_t procs = 0;
  std::size_t procs_active = 0;   // processors running fibers now (options::compaction)
  std::uint64_t compactions = 0;  // times the monitor deactivated a processor
  std::uint64_t fibers_spawned = 0;
  std::uint64_t fibers_alive = 0;
  std::uint64_t balancer_moves = 0;    // fibers the balancer moved between processors
  std::uint64_t contention_holds = 0;  // times the balancer held a processor's fibers in place
                                       // because they contended with another processor's
  std::uint64_t offloads = 0;          // fibers a busy processor pushed to the global queue
  std::uint64_t worker_sleeps = 0;     // times a worker went to sleep on its futex
  std::uint64_t worker_wakes = 0;      // times a sleeping worker was woken
  std::uint64_t safety_net_wakes = 0;  // wakes only the monitor's scan delivered (a lost wake-up)
  std::uint64_t monitor_ticks = 0;     // ticks the monitor thread ran itself
  std::uint64_t worker_ticks = 0;      // monitor ticks a waking worker ran while the monitor slept
  std::uint64_t stacks_reserved = 0;   // stacks carved out of slabs so far
  std::uint64_t stacks_guarded = 0;    // of which have a guard page
  std::uint64_t stack_slabs = 0;       // memory mappings holding stacks
  std::uint64_t handoffs = 0;          // processors taken from a stuck thread
  std::uint64_t blocked_handoffs = 0;  // ... whose fiber was blocked in the kernel
  std::uint64_t hog_handoffs = 0;      // ... whose fiber was computing
  std::uint64_t threads = 0;           // worker threads alive now
  std::uint64_t threads_peak = 0;      // the most alive at once
  std::uint64_t threads_created = 0;   // beyond the first procs
  std::uint64_t threads_retired = 0;
};

// runtime_stats: a snapshot of the counters. Does not block.
stats runtime_stats();

// fiber_info: what the panic handler learns about the fiber that failed.
struct fiber_info {
  std::uint64_t id;
  std::string_view name;  // empty when the fiber was not named
};

// unhandled_exception_handler: called when an exception escapes a fiber whose
// handle was detached or dropped. The default prints
// "spindle: unhandled exception in fiber ID (NAME): WHAT" and calls
// std::terminate, as an unrecovered Go panic ends the program.
using unhandled_exception_handler = void (*)(const fiber_info&, std::exception_ptr);

// set_unhandled_exception_handler: installs a handler (nullptr restores the
// default) and returns the previous one.
unhandled_exception_handler set_unhandled_exception_handler(unhandled_exception_handler h);

}  // namespace spindle
