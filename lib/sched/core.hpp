// lib/sched/core.hpp: the scheduler's three core structures, in one place
// (as Go keeps g, m and p in runtime2.go): fiber, processor, worker.
//
//   fiber      a user-level thread of control: a task, a stack, a saved context.
//   processor  the right and the means to run fibers: a local run queue, a
//              runnext slot, an inbox. There are options::procs of them.
//   worker     an OS thread. It runs fibers only while it owns a processor.
//
// The split between processor and worker is Go's P/M split: the queue belongs
// to the processor, not to the thread, so a processor (queue and all) can be
// given to another thread when its thread is stuck. The scheduling protocol
// lives in scheduler.cpp; this file only declares the data and who may touch it.
#pragma once

#include <sys/types.h>
#include <time.h>
#include <atomic>
#include <boost/context/fiber.hpp>
#include <cstdint>
#include <thread>
#include <vector>

#include "context/stack_pool.hpp"
#include "sched/run_queue.hpp"
#include "spindle/detail/task.hpp"

namespace spindle::detail {

struct worker;
class event_loop;

struct fiber {
  // The first cache line holds what a switch reads or writes: the context,
  // resume_sp, the id and spawn site a processor records for the monitor,
  // and the stack (its guard flag). A fiber's record is cold when it is
  // switched to after a wait; one line instead of two is one miss less.
  // The record slot is 128-byte aligned (stack_pool.hpp).

  // context: the saved registers of a suspended fiber; empty while it runs,
  // and before its first run (run_fiber builds the first frame then).
  // Written by the worker that switched away from it, read by the next worker
  // to run it; the hand-over goes through a run queue (release/acquire).
  boost::context::fiber context;
  // resume_sp: where `context` saved the registers (the top of the parked
  // stack), published after each switch out so that the worker about to run
  // the fiber before it can prefetch those lines (scheduler::prefetch_next).
  // Read and written only through resume_sp_of (atomically), its first
  // store included (spawn): a worker that peeked at its ring's head may
  // still read it after the balancer moved that fiber away, it exited and
  // a spawn reused its record; a constructor's plain write would race with
  // that read. (The slabs holding records are never unmapped.)
  const void* resume_sp;
  std::uint64_t id;
  const void* spawn_site = nullptr;  // where go() was called, for diagnostics
  fiber_stack stack;                 // the fiber struct itself lives in the stack's record slot

  // task: holds one reference until the task completes. Written only
  // through task_of (atomically), for the reason given for resume_sp:
  // prefetch_next reads it from a peeked ring head.
  task_base* task;

  // Sanitizer bookkeeping, used only in lib/context/switch.cpp.
  void* asan_fake_stack = nullptr;
  void* tsan_fiber = nullptr;

  // running: 1 while a worker runs the fiber; checks that no fiber runs
  // twice (builds with assertions only).
  std::atomic<std::uint32_t> running{0};
};
static_assert(sizeof(boost::context::fiber) + sizeof(const void*) + 2 * 8 + sizeof(fiber_stack) <=
                  64,
              "a switch's fields must share the fiber record's first cache line");
static_assert(sizeof(fiber) <= stack_record_bytes && alignof(fiber) <= stack_record_bytes);

inline std::atomic_ref<const void*> resume_sp_of(fiber& f) noexcept {
  return std::atomic_ref<const void*>(f.resume_sp);
}

inline std::atomic_ref<task_base*> task_of(fiber& f) noexcept {
  return std::atomic_ref<task_base*>(f.task);
}

// wake reasons stored in processor::wake_word.
enum wake_reason : std::uint32_t {
  wake_none = 0,
  wake_search = 1,  // woken by wakep(): counted in nsearching, look for work
  wake_inbox = 2,   // woken by the balancer: work is in the inbox
};

struct alignas(128) processor {
  int index = 0;

  // owner_word: which worker owns this processor and whether it is inside
  // the runtime: (generation << 32) | (worker id << 1) | busy. The owner sets
  // and clears `busy`; the monitor hands the processor to another worker
  // only from a word whose busy bit is clear, in one CAS (handoff.hpp).
  std::atomic<std::uint64_t> owner_word{0};
  std::atomic<worker*> owner{
      nullptr};  // the owning worker; written at handoff, read by the monitor

  run_queue ring;                        // producer: owner; consumers: owner, balancer
  std::atomic<fiber*> runnext{nullptr};  // owner only (atomic for the monitor's reads)
  fiber_queue inbox;                     // any thread pushes, owner drains

  // loop: the processor's libuv loop (io/event_loop.hpp); the owner runs it.
  event_loop* loop = nullptr;
  std::vector<fiber*> readied;  // owner only: fibers the last poll made runnable

  // Owner-only scheduling state.
  std::uint32_t schedtick = 0;            // fibers started; drives the 1-in-61 global check
  std::int64_t slice_start_ns = -1;       // coarse clock at the slice's first read; -1: none yet
  std::uint32_t slice_runnext_takes = 0;  // runnext fibers run in this slice (take_runnext)
  bool slice_used_up = false;             // the slice's time ran out: no more runnext
  std::uint64_t random_state = 0;
  const fiber* prefetched = nullptr;  // the ring head whose lines prefetch_next last loaded

  // Idle protocol (scheduler.cpp, "Parking and waking").
  bool in_idle_set = false;                 // guarded by scheduler::idle_lock_
  std::atomic<std::uint32_t> wake_word{0};  // why the owner, asleep in the loop, was woken
  // naps: times the owner went to sleep in its loop (W5). The owner
  // stores; the monitor reads it to tell a saturated processor from one
  // that has queued fibers between naps (compaction, monitor.cpp).
  std::atomic<std::uint32_t> naps{0};

  // switches: fibers switched in so far. The owner stores (no read-modify-write);
  // the monitor reads it to notice a processor that stopped making progress.
  alignas(128) std::atomic<std::uint64_t> switches{0};
  // lock_wait_ns: time this processor's fibers spent waiting for primitive
  // locks (channels, sync) another processor held (lock_contended); read by
  // the balancer.
  std::atomic<std::int64_t> lock_wait_ns{0};
  // spread_held: the balancer found this processor's fibers contending with
  // another's (contention_watch.hpp): its owner keeps the fibers it readies
  // (no offload, no overflow below run_queue::capacity). Monitor stores.
  std::atomic<bool> spread_held{false};
  std::atomic<std::uint64_t> running_fiber_id{0};  // owner stores, for diagnostics
  std::atomic<const void*> running_spawn_site{nullptr};
  // preempt_requested: set by the monitor when the running fiber hogs the
  // CPU; this_fiber::check_preempt() yields when it is set.
  std::atomic<std::uint32_t> preempt_requested{0};
  // blocking_section: the running fiber is inside spindle::blocking(): the
  // monitor hands the processor off as soon as work waits, without a threshold.
  std::atomic<std::uint32_t> blocking_section{0};
};

// after_switch: what a fiber asks its worker to do once it has switched out
// (Go's mcall(fn)): requeue it, release a lock it parked under, or free it.
using after_switch_fn = void (*)(worker& w, fiber* f, void* arg);

struct worker {
  std::uint32_t id = 0;
  // proc: the processor this worker believes it owns (nullptr: none). Only
  // this worker writes it, except that the monitor sets it on a parked
  // spare before waking it. owned_word: proc->owner_word while we own it,
  // busy bit clear.
  processor* proc = nullptr;
  std::uint64_t owned_word = 0;
  boost::context::fiber scheduler_context;  // where fibers return to; owner only
  fiber* current = nullptr;                 // the fiber running on this thread
  after_switch_fn after_switch = nullptr;
  void* after_switch_arg = nullptr;
  bool searching = false;           // counted in scheduler::nsearching_
  std::int64_t spin_budget_ns = 0;  // how long to spin before sleeping; adapts

  // The thread's own stack and sanitizer state, for lib/context/switch.cpp.
  const void* thread_stack_bottom = nullptr;
  std::size_t thread_stack_size = 0;
  void* asan_fake_stack = nullptr;
  void* tsan_fiber = nullptr;

  // Spare workers (no processor) sleep on park_word until the monitor gives
  // them a processor (handoff.cpp).
  std::atomic<std::uint32_t> park_word{0};
  std::atomic<bool> hog_handed_off{false};  // set by the monitor before the CAS that took proc
  std::atomic<bool> demoted{false};         // its OS priority was lowered as a hog
  pid_t tid = 0;                            // the kernel's id of this thread
  clockid_t cpu_clock{};                    // this thread's CPU-time clock, for the monitor
  std::atomic<bool> cpu_clock_ready{false};
};

}  // namespace spindle::detail
