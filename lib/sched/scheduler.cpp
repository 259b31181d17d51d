// lib/sched/scheduler.cpp: the fiber scheduler.
//
// Vocabulary (structures in core.hpp)
//   fiber        a stackful user thread; runnable, running, or parked.
//   processor    run queue owner: a 2,048-slot ring, a runnext slot, an inbox.
//                options::procs of them; a fiber runs only on a processor.
//   worker       an OS thread that owns one processor and runs its fibers.
//   global queue where fibers go when they are readied by a thread without a
//                processor (a plain thread, the I/O loop), or when a ring
//                overflows, or when a busy processor offloads to an idle one.
//   idle set     processors whose workers sleep in their loops (event_loop.cpp).
//   searching    a worker looking for work in the global queue and its inbox
//                (spinning briefly before sleeping, or just woken by wakep).
//   monitor      one thread that balances queues and watches for lost wake-ups.
//
// Where a worker finds work (local_work, take_global), in order:
//   1. every 61st fiber, a poll of the processor's loop and one fiber from
//      the global queue (so a processor busy with its own fibers, or fed by
//      the global queue without end, starves neither its timers and I/O nor
//      the global queue; Go's rule for the global queue, fair_turn);
//   2. runnext, while the current time slice (2 ms, on the coarse clock) lasts:
//      a fiber readied by a running fiber inherits its slice, so a ping-pong
//      pair or a spawn-and-join chain runs as a unit but cannot starve the ring;
//   3. the local ring; 4. the inbox; 5. a batch from the global queue,
//      min(len/procs + 1, 128) fibers.
// It never looks at another processor's ring.
//
// Why balancing instead of stealing
//   Work stealing makes every idle worker scan its peers; under message
//   passing and partial load most of those scans fail and burn CPU, and they
//   pull fibers away from the cache that their waker just warmed. Spindle's
//   workers only ever look at their own queues and the global queue. Work
//   spreads three ways, none of which is a worker scanning a peer:
//   a. push side: a processor that readies or yields a fiber while another
//      processor is idle and nobody is searching sends the fiber to the global
//      queue and wakes one idle processor (an "offload");
//   b. overflow: a ring holding run_queue::spread_limit (256) fibers moves
//      its older half to the global queue;
//   c. the balancer (monitor.cpp): every options::balance_interval while any
//      processor is busy, it moves half of the longest ring into an idle (or
//      the shortest) processor's inbox and wakes it.
//   This is the thesis of smolscale and of BEAM's check_balance().
//   Spreading is not always a gain: fibers that pass messages through one
//   primitive (a fanout of many receivers on one channel) run faster on one
//   processor than on two spinning for its lock. A primitive's lock times
//   its contended acquisitions per processor (primitive_lock_ref); when the
//   balancer sees a processor's fibers wait for such locks a tenth of their
//   time, it holds the processor
//   (processor::spread_held, lib/sched/contention_watch.hpp): a held
//   processor does not offload (a), lets its ring fill up to its capacity of
//   2,048 before it overflows (b), and the balancer leaves it alone (c).
//
// Parking and waking (the lost-wake-up protocol; Go's "delicate dance")
//   Invariant: if work is queued where processor P will look, then P is
//   running, searching, or will be woken.
//   Submitter (push_global, an offload):
//     S1. push the fiber (the queue's length is stored under its lock);
//     S2. seq_cst fence;
//     S3. if nsearching == 0 and nidle > 0: wakep().
//   wakep(): CAS nsearching 0 -> 1 (at most one wake in flight, so a burst
//     of submissions wakes one worker, not a herd); claim the lowest-index
//     idle processor (removing it from the idle set, nidle -= 1) and set its
//     wake word to wake_search, then wake its loop (uv_async_send: the
//     worker sleeps in its processor's event loop). The woken worker is
//     searching; when it finds work it stops searching and, if the global
//     queue still has fibers, calls wakep() itself: wakes chain one at a time.
//     If nobody is idle after all, wakep undoes the CAS, fences and, if the
//     global queue is not empty, starts over: a submitter that saw its
//     nsearching == 1 counted on a searcher that does not exist.
//   Worker running out of work (wait_for_work):
//     W1. spin up to options::spin on the inbox and global queue (as a
//         searcher, if it could become one);
//     W2. join the idle set (wake word := 0, nidle += 1) under the idle lock;
//     W3. stop searching (nsearching -= 1, seq_cst);
//     W4. seq_cst fence, then re-check the ring, runnext, inbox and global
//         queue. If there is work: leave the idle set if still in it (else a
//         claimer is about to wake us: fine, we consume the wake later);
//     W5. sleep in the processor's event loop while the wake word is 0; if
//         the loop itself readies fibers (I/O, timers), leave the idle set
//         and run them (if a claimer was first, its wake is on the way).
//   A worker whose processor is inactive (compaction) never joins the idle
//   set; before it rests it stops searching or, if the global queue is not
//   empty, calls wakep(): it may have been the one those fibers counted on.
//   Why nothing is lost: the fences of S2 and W4 are ordered. If W4 comes
//   first, S3 sees nsearching already decremented and nidle incremented, and
//   wakes someone; if S2 comes first, W4 sees the pushed fiber. A processor
//   claimed by a waker (W4 lost the race to leave the idle set) gets its wake
//   word set before its loop is woken, and the loop's wake (an eventfd
//   write) is not lost if it comes before the worker blocks in epoll; W5
//   re-reads the word after every poll. The balancer claims an idle processor before filling its
//   inbox, so the same argument covers it. tests/model checks the protocol, compaction included
//   (wake_model.cpp, compaction_model.cpp). The monitor also counts any fiber left queued while
//   every processor sleeps (safety_net_wakes); tests assert the count stays zero.
//
// Parking a fiber
//   A fiber parks by switching out, and its after_switch action (Go's
//   mcall/park_m) runs once it has: on the worker's scheduler context, or,
//   when the next fiber is runnext or the ring's head (direct_successor), on
//   top of that fiber's stack, which the parking fiber switched to directly
//   (Boost.Fiber's shape: one stack switch a hand-over instead of two, and
//   no trip through the scheduler's frames). The pick is local_work's, made
//   in the runtime just as the scheduler would make it; the fair turn, and
//   anything else, goes through the scheduler. Primitives register a waiter
//   under their lock, release the lock and park; the waiter's state word,
//   settled in the after_switch action, makes sure a waker never resumes a
//   fiber that has not finished switching out (lib/sched/park.hpp).
#include "sched/scheduler.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "context/overflow.hpp"
#include "context/switch.hpp"
#include "os/futex.hpp"
#include "sched/handoff.hpp"
#include "sched/options.hpp"
#include "sched/task_access.hpp"

namespace spindle::detail {
namespace {

constexpr std::uint32_t global_check_period = 61;
constexpr std::int64_t slice_ns = 2'000'000;     // runnext chains share at most one slice
constexpr std::uint32_t slice_clock_period = 8;  // take_runnext reads the clock this often
constexpr std::uint32_t max_global_batch = 128;
constexpr std::size_t offload_batch = 32;  // take_readied splits larger batches

std::atomic<scheduler*> the_scheduler{nullptr};
__attribute__((tls_model("initial-exec"))) thread_local std::vector<fiber*>* ready_batch = nullptr;
std::atomic<bool> exiting{false};

void stop_scheduling_at_exit() { exiting.store(true, std::memory_order_release); }

[[noreturn]] void sleep_forever() {
  std::atomic<std::uint32_t> never{0};
  for (;;) futex_wait(never, 0);
}

// mark_running / mark_stopped: in builds with assertions, a fiber that a
// scheduler bug made runnable twice is caught before it runs twice.
void mark_running([[maybe_unused]] fiber& f) noexcept {
#ifndef NDEBUG
  if (f.running.exchange(1, std::memory_order_acquire) != 0) {
    std::fprintf(stderr, "spindle: fatal: fiber %llu scheduled while already running\n",
                 static_cast<unsigned long long>(f.id));
    std::abort();
  }
#endif
}

void mark_stopped([[maybe_unused]] fiber& f) noexcept {
#ifndef NDEBUG
  f.running.store(0, std::memory_order_release);
#endif
}

std::int64_t coarse_now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// block_sigpipe: a worker runs libuv's writes (and fibers' raw writes) on
// sockets whose peer may be gone: they fail with EPIPE instead of killing
// the process (docs/errors.md).
void block_sigpipe() noexcept {
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
}

void requeue_after_yield(worker&, fiber* f, void* sched) {
  static_cast<scheduler*>(sched)->ready(f, false);
}

}  // namespace

scheduler& scheduler::get() {
  if (scheduler* s = the_scheduler.load(std::memory_order_acquire)) return *s;
  static std::once_flag once;
  std::call_once(once, [] {
    auto* s = new scheduler(freeze_options());  // never destroyed: see docs/design.md, "Exit"
    the_scheduler.store(s, std::memory_order_release);
    std::atexit(stop_scheduling_at_exit);
    s->start_workers();
  });
  return *the_scheduler.load(std::memory_order_acquire);
}

scheduler* scheduler::started() noexcept { return the_scheduler.load(std::memory_order_acquire); }

scheduler::scheduler(const options& opts)
    : options_(opts), cpus_(static_cast<int>(available_cpus())) {
  configure_stack_pool({options_.stack_size, options_.guarded_stacks, options_.guard_regions});
  const std::int64_t slack_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.timer_slack).count();
  for (std::size_t i = 0; i < options_.procs; ++i) {
    auto p = std::make_unique<processor>();
    p->index = static_cast<int>(i);
    p->random_state = 0x9e3779b97f4a7c15ull * (i + 1);
    loops_.push_back(std::make_unique<event_loop>(p->index, slack_ns));
    p->loop = loops_.back().get();
    p->readied.reserve(run_queue::capacity);
    processors_.push_back(std::move(p));
  }
  active_.store(static_cast<int>(processors_.size()), std::memory_order_relaxed);
}

event_loop& scheduler::current_loop() const noexcept {
  worker* w = current_worker();
  if (w != nullptr && w->proc != nullptr) return *w->proc->loop;
  return *processors_[0]->loop;
}

void scheduler::start_workers() {
  // The lazy monitor's timer (monitor.cpp); made before any thread that uses
  // it starts, and before first use returns, so the runtime's descriptors
  // are all open once it has started.
  monitor_timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);  // -1: never lazy
  for (auto& p : processors_) start_thread(*add_worker(p.get()));
  monitor_ = std::thread([this] { monitor_loop(); });
  monitor_.detach();
}

fiber* scheduler::running_fiber() noexcept {
  worker* w = current_worker();
  return w ? w->current : nullptr;
}

// ---------------------------------------------------------------------------
// Spawning and readying.

void scheduler::spawn(task_base* t, const spawn_options& opts, const void* site) {
  fiber_stack stack;
  try {
    stack = allocate_stack(opts.stack_size);
  } catch (...) {
    t->release();
    throw;
  }
  fiber* f = new (stack.record) fiber;  // not fiber{}: that would write resume_sp plainly
  resume_sp_of(*f).store(nullptr, std::memory_order_relaxed);
  task_of(*f).store(t, std::memory_order_relaxed);
  f->stack = stack;
  f->id = next_fiber_id_.fetch_add(1, std::memory_order_relaxed);
  f->spawn_site = site;
  task_access::start(*t, f->id, opts.name);
  prepare_fiber(*f);
  // A reused stack is resident and the spawner's stores to it overlap; a
  // fresh one's top page faults in on first touch, which the workers then
  // take in parallel when they first run the fiber (run_fiber).
  if (!stack.fresh) build_first_frame(*f);
  ready(f, true);
}

void scheduler::ready(fiber* f, bool next) noexcept {
  if (ready_batch != nullptr) {  // a worker polling its loop
    ready_batch->push_back(f);
    return;
  }
  worker* w = current_worker();
  if (w != nullptr && w->proc != nullptr) {
    if (w->current == nullptr) {  // scheduler context: we are inside the runtime already
      put_local(*w->proc, f, next);
      return;
    }
    if (enter_runtime(*w)) {  // fiber context: make sure the processor is still ours
      put_local(*w->proc, f, next);
      leave_runtime(*w);
      return;
    }
    lose_processor(*w);
  }
  push_global(f);
}

// publish_resume_sp: records where f's context lives (Boost.Context's
// fiber is the saved stack pointer), for prefetch_next.
void scheduler::publish_resume_sp(fiber& f) noexcept {
  static_assert(sizeof(f.context) == sizeof(void*));
  const void* sp;
  std::memcpy(&sp, &f.context, sizeof sp);
  resume_sp_of(f).store(sp, std::memory_order_relaxed);
}

void lock_contended(spinlock_ref lock) noexcept {
  const std::int64_t start = steady_now_ns();
  lock.lock();
  const worker* w = current_worker();
  if (w != nullptr && w->proc != nullptr) {
    w->proc->lock_wait_ns.fetch_add(steady_now_ns() - start, std::memory_order_relaxed);
  }
}

void scheduler::set_ready_batch(std::vector<fiber*>* batch) noexcept { ready_batch = batch; }

void scheduler::put_local(processor& p, fiber* f, bool next) noexcept {
  if (randomize_scheduler() && !next) {  // a yielded fiber moves to whichever worker takes it
    push_global(f);
    return;
  }
  if (next && !randomize_scheduler()) {
    fiber* displaced = p.runnext.load(std::memory_order_relaxed);
    p.runnext.store(f, std::memory_order_relaxed);
    if (displaced == nullptr) return;
    f = displaced;
  }
  if (nidle_.load(std::memory_order_relaxed) > 0 &&
      nsearching_.load(std::memory_order_relaxed) == 0 &&
      !p.spread_held.load(std::memory_order_relaxed)) {
    offloads_.fetch_add(1, std::memory_order_relaxed);
    push_global(f);
    return;
  }
  push_ring_or_overflow(p, f);
}

void scheduler::push_ring_or_overflow(processor& p, fiber* f) noexcept {
  const std::uint32_t limit =
      p.spread_held.load(std::memory_order_relaxed) ? run_queue::capacity : run_queue::spread_limit;
  if (!p.ring.push(f, limit)) overflow_to_global(p, f);
}

// overflow_to_global: a ring at its limit sends its older half (at most a
// batch), and f, to the global queue (Go's runqputslow). Out of line: the
// batch is large for a fiber stack.
__attribute__((noinline)) void scheduler::overflow_to_global(processor& p, fiber* f) noexcept {
  fiber_batch batch;
  p.ring.grab(batch, fiber_batch::capacity - 1);
  batch.push(f);
  push_global_all(batch.items, batch.size);
}

// push_global, push_global_all: steps S1-S3 of the wake protocol. While a
// push has not made its wake decision yet it counts in pushes_in_flight_, so
// the safety net does not mistake a pusher delayed by the OS (between S1
// and S3) for a lost wake-up.
void scheduler::push_global(fiber* f) noexcept {
  pushes_in_flight_.fetch_add(1, std::memory_order_relaxed);
  global_.push(f);
  after_global_push();
}

void scheduler::push_global_all(fiber* const* fibers, std::size_t n) noexcept {
  if (n == 0) return;
  pushes_in_flight_.fetch_add(1, std::memory_order_relaxed);
  global_.push_all(fibers, n);
  after_global_push();
}

// after_global_push: steps S2-S3 of the wake protocol; and when every
// processor is busy while one looked stuck, the monitor is told at once
// rather than at its next tick (it may hand that processor off).
void scheduler::after_global_push() noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (nsearching_.load(std::memory_order_relaxed) == 0) wakep();
  pushes_in_flight_.fetch_sub(1, std::memory_order_release);
  if (nidle_.load(std::memory_order_relaxed) == 0 &&
      stall_suspected_.load(std::memory_order_relaxed)) {
    poke_monitor();
  }
}

// ---------------------------------------------------------------------------
// Parking, yielding, exiting.

void scheduler::park(after_switch_fn action, void* arg) noexcept { switch_out(action, arg); }

void scheduler::yield_fiber() noexcept { park(requeue_after_yield, this); }

void fiber_main(fiber& f) noexcept {
  f.task->run();
  check_unguarded_overflow(f, true);
  f.task->complete();  // may free the task
  task_of(f).store(nullptr, std::memory_order_relaxed);
}

void fiber_exited(worker& w, fiber* f, void*) { scheduler::get().fiber_finished(w, f); }

void scheduler::fiber_finished(worker&, fiber* f) noexcept {
  release_fiber_sanitizer_state(*f);
  const fiber_stack stack = f->stack;
  f->~fiber();
  release_stack(stack);
  exited_.fetch_add(1, std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------
// The worker loop.

void scheduler::worker_loop(worker& w) {
  enter_worker_thread(w);
  block_sigpipe();
  for (;;) {
    if (w.proc == nullptr && !become_spare(w)) return;  // retired: w is gone
    execute(w, find_runnable(w));
  }
}

// execute: runs f on w's processor until a fiber switches back to the
// scheduler (f, or one reached from f by direct switches), then performs
// what that fiber asked for. User code runs outside the runtime (busy
// clear), so the monitor may take the processor meanwhile; execute then
// finds out in enter_runtime and carries on without it.
void scheduler::execute(worker& w, fiber* f) noexcept {
  begin_run(w, *w.proc, *f);
  leave_runtime(w);
  fiber& out = run_fiber(w, *f);
  if (w.proc != nullptr && !enter_runtime(w)) lose_processor(w);
  after_run(w, out);
}

// begin_run: f becomes p's running fiber; in the runtime.
void scheduler::begin_run(worker& w, processor& p, fiber& f) noexcept {
  p.switches.store(p.switches.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  p.running_fiber_id.store(f.id, std::memory_order_relaxed);
  p.running_spawn_site.store(f.spawn_site, std::memory_order_relaxed);
  if (p.preempt_requested.load(std::memory_order_relaxed) != 0) {
    p.preempt_requested.store(0, std::memory_order_relaxed);
  }
  mark_running(f);
  w.current = &f;
  prefetch_next(p);
}

// after_run: `out` has switched out; publishes where it stopped and
// performs its after-switch step.
void scheduler::after_run(worker& w, fiber& out) noexcept {
  publish_resume_sp(out);
  w.current = nullptr;
  mark_stopped(out);
  const after_switch_fn action = w.after_switch;
  w.after_switch = nullptr;
  action(w, &out, w.after_switch_arg);
}

namespace {
// has_run: whether f has switched out at least once, so its frames are
// built. Reads only resume_sp: the balancer may hand a peeked fiber to
// another processor, which may be running it meanwhile.
bool has_run(fiber& f) noexcept {
  return resume_sp_of(f).load(std::memory_order_relaxed) != nullptr;
}
}  // namespace

fiber* take_direct_successor(worker& w) noexcept { return scheduler::get().direct_successor(w); }

void settle_direct_switch(worker& w, fiber& out, fiber& next) noexcept {
  scheduler::get().settle_direct_switch(w, out, next);
}

// direct_successor: a switching-out fiber's successor, when local_work would
// pick it without the scheduler's loop: runnext within its slice, else the
// ring's head. Not on the fair turn (every global_check_period-th pick: the
// loop and the global queue must be polled from the scheduler's stack), nor
// on an inactive processor, nor while exiting; nor a fiber whose first frame
// is not built yet, since the switching-out fiber may hold a primitive's lock
// and building it touches a stack page the kernel may not have yet. On
// success the caller is in the runtime (busy set) until settle_direct_switch
// leaves it.
fiber* scheduler::direct_successor(worker& w) noexcept {
  if (w.proc == nullptr || randomize_scheduler()) return nullptr;
  processor& p = *w.proc;
  if (p.runnext.load(std::memory_order_relaxed) == nullptr && p.ring.size() == 0) {
    return nullptr;  // nothing queued: the scheduler goes idle, no need to enter the runtime twice
  }
  if (!enter_runtime(w)) return nullptr;  // handed off meanwhile: the scheduler path copes
  fiber* next = nullptr;
  if ((p.schedtick + 1) % global_check_period != 0 && is_active(p) &&
      !exiting.load(std::memory_order_relaxed)) {
    if (fiber* r = p.runnext.load(std::memory_order_relaxed)) {
      if (r->context) next = take_runnext(p);  // nullptr once the slice is used up
    } else if (fiber* head = p.ring.peek(0); head != nullptr && has_run(*head)) {
      if ((next = p.ring.pop()) != nullptr) start_slice(p, next);  // the head, unless balanced away
    }
  }
  if (next == nullptr) {
    leave_runtime(w);
    return nullptr;
  }
  ++p.schedtick;
  if (!next->context) build_first_frame(*next);  // the balancer took the head meanwhile
  return next;
}

void scheduler::settle_direct_switch(worker& w, fiber& out, fiber& next) noexcept {
  after_run(w, out);
  begin_run(w, *w.proc, next);
  leave_runtime(w);
}

// prefetch_next: while the current fiber runs, starts loading the saved
// registers and top frames of the fiber queued next, the start of its
// callable (the captures a loop in a lambda reads first thing after each
// wait), and the record of the one after it (whose resume_sp and task the
// next call reads). A fiber woken by a timer or I/O long after it parked
// finds those lines, and their pages' TLB entries, cold: in the timers
// workload the first load from a resumed stack was a fifth of the CPU time,
// and in idle_cpu the load of a capture right after the sleep was a quarter
// of the benchmark loop's samples. A head already prefetched (a ping-pong
// pair runs through runnext while the ring waits) is not loaded again.
void scheduler::prefetch_next(processor& p) noexcept {
  fiber* next = p.ring.peek(0);
  if (next == nullptr || next == p.prefetched) return;
  p.prefetched = next;
  if (fiber* after_next = p.ring.peek(1)) {
    __builtin_prefetch(after_next);
    __builtin_prefetch(&after_next->task);  // past the first line
  }
  if (const task_base* task = task_of(*next).load(std::memory_order_relaxed)) {
    const char* callable = reinterpret_cast<const char*>(task) + sizeof(task_base);
    __builtin_prefetch(callable);
    __builtin_prefetch(callable + 64);
  }
  const char* sp = static_cast<const char*>(resume_sp_of(*next).load(std::memory_order_relaxed));
  if (sp == nullptr) return;
  for (int line = 0; line < 8; ++line) __builtin_prefetch(sp + 64 * line);
}

fiber* scheduler::find_runnable(worker& w) {
  processor& p = *w.proc;
  for (;;) {
    if (exiting.load(std::memory_order_relaxed)) sleep_forever();
    if (!is_active(p)) {
      rest_while_inactive(w, p);
      continue;
    }
    fiber* f = local_work(p);
    if (f == nullptr && (f = take_global(p)) != nullptr) start_slice(p, f);
    if (f == nullptr && (f = poll_loop(p)) != nullptr) start_slice(p, f);
    if (f != nullptr) {
      if (w.searching) stop_searching(w);
      return f;
    }
    f = wait_for_work(w);
    if (f != nullptr) return start_slice(p, f);
  }
}

fiber* scheduler::local_work(processor& p) noexcept {
  if (++p.schedtick % global_check_period == 0) {
    if (fiber* f = fair_turn(p)) return start_slice(p, f);
  }
  if (fiber* f = take_runnext(p)) return f;
  if (fiber* f = p.ring.pop()) return start_slice(p, f);
  if (fiber* f = p.runnext.load(std::memory_order_relaxed)) {
    p.runnext.store(nullptr, std::memory_order_relaxed);
    return start_slice(p, f);
  }
  if (!p.inbox.empty()) return start_slice(p, drain_inbox(p));
  return nullptr;
}

// fair_turn: every 61st pick, however full the local queues stay, the loop
// (due timers, I/O) and the global queue each get a turn: the loop is
// polled, and one global fiber runs now or, if the poll readied fibers
// (which run first), joins the ring. Otherwise a processor whose ring never
// empties, or that always finds the global queue non-empty, would never poll
// its loop, and its sleepers would never wake.
fiber* scheduler::fair_turn(processor& p) noexcept {
  fiber* f = poll_loop(p);
  if (!global_.empty()) {
    if (fiber* g = global_.pop()) {
      if (f == nullptr) return g;
      push_ring_or_overflow(p, g);
    }
  }
  if (f == nullptr && !p.inbox.empty()) f = drain_inbox(p);
  return f;
}

// take_runnext: the runnext fiber, if the current time slice has time left.
// A fiber readied into runnext inherits its waker's slice (Go's inheritTime),
// so a chain of spawns and joins, or a ping-pong pair, runs as a unit without
// touching the ring; once the slice is used up, the ring gets its turn. The
// clock is read at every slice_clock_period-th runnext take of the slice,
// the first read starting its 2 ms: a ping-pong pair takes runnext every
// switch, and the coarse clock moves only once a tick (1-4 ms) anyway; a
// slice of a few takes (an idle_cpu round trip has two) reads no clock.
fiber* scheduler::take_runnext(processor& p) noexcept {
  fiber* f = p.runnext.load(std::memory_order_relaxed);
  if (f == nullptr || p.slice_used_up) return nullptr;
  if (++p.slice_runnext_takes % slice_clock_period == 0) {
    const std::int64_t now = coarse_now_ns();
    if (p.slice_start_ns < 0) {
      p.slice_start_ns = now;
    } else if (now - p.slice_start_ns >= slice_ns) {
      p.slice_used_up = true;
      return nullptr;
    }
  }
  p.runnext.store(nullptr, std::memory_order_relaxed);
  return f;
}

fiber* scheduler::start_slice(processor& p, fiber* f) noexcept {
  p.slice_start_ns = -1;  // read the clock only if runnext is used in this slice
  p.slice_runnext_takes = 0;
  p.slice_used_up = false;
  return f;
}

// drain_inbox: moves the inbox into the ring; returns one fiber to run, if any.
fiber* scheduler::drain_inbox(processor& p) noexcept {
  fiber_batch batch;
  p.inbox.pop_batch(batch, fiber_batch::capacity);
  return run_batch_locally(p, batch);
}

// run_batch_locally: returns the batch's first fiber and queues the rest on p.
fiber* scheduler::run_batch_locally(processor& p, fiber_batch& batch) noexcept {
  if (batch.empty()) return nullptr;
  if (randomize_scheduler()) shuffle(batch, p.random_state);
  for (std::uint32_t i = 1; i < batch.size; ++i) push_ring_or_overflow(p, batch.items[i]);
  return batch.items[0];
}

// poll_loop: polls p's loop without blocking, if it has anything in
// progress; returns one fiber it made runnable, the others queued.
fiber* scheduler::poll_loop(processor& p) {
  if (!p.loop->worth_polling(steady_now_ns())) return nullptr;
  p.loop->poll(false, p.readied);
  return take_readied(p);
}

// take_readied: returns the first fiber of p.readied and queues the rest on
// p. A large batch (more than offload_batch) is split when another processor
// is idle and nobody is searching: the second half goes to the global queue
// (one wake). A small one stays: waking a second worker for a few short
// fibers costs more than running them here, and the balancer spreads a
// backlog that persists.
fiber* scheduler::take_readied(processor& p) noexcept {
  std::vector<fiber*>& readied = p.readied;
  if (readied.empty()) return nullptr;
  std::size_t keep = readied.size();
  if (keep > offload_batch && nidle_.load(std::memory_order_relaxed) > 0 &&
      nsearching_.load(std::memory_order_relaxed) == 0) {
    keep = (keep + 1) / 2;
    offloads_.fetch_add(readied.size() - keep, std::memory_order_relaxed);
    push_global_all(readied.data() + keep, readied.size() - keep);
  }
  for (std::size_t i = 1; i < keep; ++i) push_ring_or_overflow(p, readied[i]);
  fiber* first = readied.front();
  readied.clear();
  return first;
}

fiber* scheduler::take_global(processor& p) noexcept {
  const std::uint32_t queued = global_.size();
  if (queued == 0) return nullptr;
  const std::uint32_t procs = static_cast<std::uint32_t>(processors_.size());
  const std::uint32_t want = std::min(queued / procs + 1, max_global_batch);
  fiber_batch batch;
  global_.pop_batch(batch, want);
  return run_batch_locally(p, batch);
}

// ---------------------------------------------------------------------------
// Idle workers: spin briefly, then sleep (protocol steps W1-W5 above).

// spin_for_work: looks for work for up to w.spin_budget_ns before the
// worker sleeps. The budget adapts (see wait_for_work): spinning pays when
// work comes back within microseconds (message passing across processors)
// and is waste when it comes back every few hundred (timers, I/O).
fiber* scheduler::spin_for_work(worker& w) {
  processor& p = *w.proc;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::nanoseconds(w.spin_budget_ns);
  do {
    for (int i = 0; i < 64; ++i) cpu_relax();
    if (!p.inbox.empty()) {
      if (fiber* f = drain_inbox(p)) return f;
    }
    if (fiber* f = take_global(p)) return f;
  } while (std::chrono::steady_clock::now() < deadline);
  w.spin_budget_ns /= 2;  // spun for nothing: spin less next time
  return nullptr;
}

fiber* scheduler::wait_for_work(worker& w) {
  processor& p = *w.proc;
  if (monitor_lazy_.load(std::memory_order_relaxed)) {  // the monitor sleeps: tick in its stead
    const std::int64_t now = steady_now_ns();
    if (now >= next_lazy_tick_ns_.load(std::memory_order_relaxed)) tick_for_monitor(now);
  }
  if (!w.searching) {
    int none = 0;
    w.searching = nsearching_.compare_exchange_strong(none, 1);
  }
  if (w.searching && w.spin_budget_ns > 0) {  // W1
    if (fiber* f = spin_for_work(w)) {
      stop_searching(w);
      return f;
    }
  }
  if (!join_idle_set(p)) {  // W2; deactivated meanwhile: find_runnable rests
    if (w.searching) stop_searching(w);
    return nullptr;
  }
  if (w.searching) {  // W3
    w.searching = false;
    nsearching_.fetch_sub(1, std::memory_order_seq_cst);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);  // W4
  if (has_visible_work(p) && leave_idle_set(p)) return nullptr;
  sleeps_.fetch_add(1, std::memory_order_relaxed);
  p.naps.store(p.naps.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  const auto slept_at = std::chrono::steady_clock::now();
  fiber* f = sleep_in_loop(w, p);  // W5
  wakes_.fetch_add(1, std::memory_order_relaxed);
  adapt_spin(w, std::chrono::steady_clock::now() - slept_at);
  if (monitor_asleep_.load(std::memory_order_seq_cst) != 0) wake_monitor();
  return f;
}

// sleep_in_loop: step W5. The worker sleeps in its processor's loop until a
// waker sets its wake word (and wakes the loop), or until the loop itself
// makes fibers runnable (I/O, a timer): then the worker leaves the idle set
// and runs them. If a waker claimed it meanwhile, its wake is on the way;
// the fibers wait in the ring until it arrives.
fiber* scheduler::sleep_in_loop(worker& w, processor& p) {
  std::uint32_t why;
  while ((why = p.wake_word.load(std::memory_order_acquire)) == wake_none) {
    p.loop->poll(true, p.readied);
    if (p.readied.empty()) continue;
    if (leave_idle_set(p)) {
      w.searching = false;
      return take_readied(p);
    }
    for (fiber* f : p.readied) push_ring_or_overflow(p, f);
    p.readied.clear();
  }
  w.searching = why == wake_search;
  return nullptr;
}

// rest_while_inactive: an inactive processor (compaction, monitor.cpp) runs
// no fibers. It sends what it has queued to the global queue and sleeps in
// its loop, which still fires its timers and completes its I/O; the fibers
// those make runnable go to the global queue too, for the active
// processors (so a fiber that slept here moves to an active processor's
// wheel the next time it sleeps). It runs fibers again once the monitor
// activates it (active_ first, then a wake of its loop, which the poll
// below cannot miss: see sleep_in_loop).
void scheduler::rest_while_inactive(worker& w, processor& p) {
  // Fibers in the global queue may count on this worker: as the searcher,
  // or because it saw them at W4 and left the idle set to run them. Hand
  // them on (tests/model/compaction_model.cpp, bug 2).
  if (w.searching) {
    stop_searching(w);
  } else if (!global_.empty()) {
    wakep();
  }
  evacuate(p);
  while (!is_active(p)) {
    p.loop->poll(true, p.readied);
    push_global_all(p.readied.data(), p.readied.size());
    p.readied.clear();
  }
  p.wake_word.store(wake_none, std::memory_order_relaxed);
}

// evacuate: moves p's runnext, ring and inbox to the global queue.
void scheduler::evacuate(processor& p) noexcept {
  for (;;) {
    fiber_batch batch;
    if (fiber* f = p.runnext.load(std::memory_order_relaxed)) {
      p.runnext.store(nullptr, std::memory_order_relaxed);
      batch.push(f);
    }
    p.ring.grab(batch, run_queue::capacity);
    p.inbox.pop_batch(batch, fiber_batch::capacity - batch.size);
    if (batch.empty()) return;
    push_global_all(batch.items, batch.size);
  }
}

// adapt_spin: a worker woken soon after it fell asleep (within twice the
// longest spin) would have done better to keep spinning: let it spin longer
// next time, up to options::spin.
void scheduler::adapt_spin(worker& w, std::chrono::steady_clock::duration slept) noexcept {
  const std::int64_t most =
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.spin).count();
  if (std::chrono::duration_cast<std::chrono::nanoseconds>(slept).count() < 2 * most) {
    w.spin_budget_ns = std::min(most, 2 * w.spin_budget_ns + 1000);
  }
}

bool scheduler::has_visible_work(processor& p) const noexcept {
  return !global_.empty() || !p.inbox.empty() || p.ring.size() != 0 ||
         p.runnext.load(std::memory_order_relaxed) != nullptr;
}

// join_idle_set: step W2. An inactive processor never joins (so no waker
// ever claims it); active_ changes under the same lock.
bool scheduler::join_idle_set(processor& p) noexcept {
  std::lock_guard lock(idle_lock_);
  if (!is_active(p)) return false;
  p.wake_word.store(wake_none, std::memory_order_relaxed);
  auto at = std::lower_bound(idle_.begin(), idle_.end(), &p,
                             [](processor* a, processor* b) { return a->index > b->index; });
  idle_.insert(at, &p);
  p.in_idle_set = true;
  nidle_.fetch_add(1, std::memory_order_seq_cst);
  return true;
}

bool scheduler::leave_idle_set(processor& p) noexcept {
  std::lock_guard lock(idle_lock_);
  if (!p.in_idle_set) return false;
  remove_from_idle_set_locked(p);
  return true;
}

void scheduler::remove_from_idle_set_locked(processor& p) noexcept {
  idle_.erase(std::find(idle_.begin(), idle_.end(), &p));
  p.in_idle_set = false;
  nidle_.fetch_sub(1, std::memory_order_seq_cst);
}

processor* scheduler::claim_idle() noexcept {
  std::lock_guard lock(idle_lock_);
  if (idle_.empty()) return nullptr;
  processor* p = idle_.back();
  idle_.pop_back();
  p->in_idle_set = false;
  nidle_.fetch_sub(1, std::memory_order_seq_cst);
  return p;
}

void scheduler::wake_processor(processor& p, wake_reason why) noexcept {
  p.wake_word.store(why, std::memory_order_release);
  p.loop->wake();
}

// wakep: the CAS makes the caller the searcher until the claimed processor
// takes over. When nobody is idle after all it undoes the CAS; a submitter
// that saw nsearching == 1 meanwhile left its fiber to that searcher, so,
// like a worker going idle (W3, W4), it fences and looks at the global queue
// again (tests/model: wake_model.cpp, two plain threads; compaction_model.cpp).
void scheduler::wakep() noexcept {
  for (;;) {
    if (nidle_.load(std::memory_order_seq_cst) == 0) return;
    int none = 0;
    if (!nsearching_.compare_exchange_strong(none, 1)) return;
    if (processor* p = claim_idle()) {
      wake_processor(*p, wake_search);
      return;
    }
    nsearching_.fetch_sub(1, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (global_.empty()) return;
  }
}

void scheduler::stop_searching(worker& w) noexcept {
  w.searching = false;
  nsearching_.fetch_sub(1, std::memory_order_seq_cst);
  if (!global_.empty()) wakep();
}

stats scheduler::snapshot() const noexcept {
  stats s;
  s.procs = processors_.size();
  s.procs_active = static_cast<std::size_t>(active_.load(std::memory_order_relaxed));
  s.compactions = compactions_.load(std::memory_order_relaxed);
  const std::uint64_t exited = exited_.load(std::memory_order_acquire);
  s.fibers_spawned = next_fiber_id_.load(std::memory_order_acquire) - 1;  // ids count spawns
  s.fibers_alive = s.fibers_spawned - exited;
  s.balancer_moves = balancer_moves_.load(std::memory_order_relaxed);
  s.contention_holds = contention_holds_.load(std::memory_order_relaxed);
  s.offloads = offloads_.load(std::memory_order_relaxed);
  s.worker_sleeps = sleeps_.load(std::memory_order_relaxed);
  s.worker_wakes = wakes_.load(std::memory_order_relaxed);
  s.safety_net_wakes = safety_net_wakes_.load(std::memory_order_relaxed);
  s.worker_ticks = worker_ticks_.load(std::memory_order_relaxed);
  s.monitor_ticks = monitor_ticks_.load(std::memory_order_relaxed);
  s.handoffs = handoffs_.load(std::memory_order_relaxed);
  s.blocked_handoffs = blocked_handoffs_.load(std::memory_order_relaxed);
  s.hog_handoffs = hog_handoffs_.load(std::memory_order_relaxed);
  s.threads = threads_alive_.load(std::memory_order_relaxed);
  s.threads_peak = threads_peak_.load(std::memory_order_relaxed);
  s.threads_created = threads_created_.load(std::memory_order_relaxed);
  s.threads_retired = threads_retired_.load(std::memory_order_relaxed);
  const stack_pool_counters c = stack_pool_counts();
  s.stacks_reserved = c.reserved;
  s.stacks_guarded = c.guarded;
  s.stack_slabs = c.slabs;
  return s;
}

}  // namespace spindle::detail
