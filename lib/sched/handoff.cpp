// lib/sched/handoff.cpp: handing a stuck thread's processor to another
// thread, and the pool of worker threads that makes it possible.
//
// Vocabulary (with scheduler.cpp's): a *spare* is a worker thread without a
// processor, parked on its own futex word; a *handoff* moves a processor,
// queue, runnext and all, from a worker stuck in user code to a spare.
//
// The ownership protocol is in handoff.hpp. Around it:
//
//   Monitor, taking processor P from stuck worker A (hand_off):
//     1. take a spare B (the most recently parked), or start a new thread
//        as a spare first, within options::max_threads and a rate limit;
//     2. set B.proc = P and B.owned_word = the next generation's word;
//     3. CAS P.owner_word from the word it observed (A, busy clear) to
//        B's word with busy set. If the CAS fails, A came back into the
//        runtime (or exited the stall): B goes back to the spares;
//     4. wake B (park_word := 1, FUTEX_WAKE). B runs P's fibers from then on.
//   Worker A, when its fiber next enters the runtime (it readies a fiber, or
//   switches out), fails its enter_runtime CAS, forgets P (lose_processor),
//   finishes the fiber's request without a processor, and becomes a spare:
//   it parks, or, after options::retire_after without work and with more
//   than procs + 2 worker threads alive, exits (become_spare).
//   The fiber that was stuck is never run twice: it stays on A until it
//   switches out, and only then is it queued (globally) like any other.
//
// Hogs get at most 2 * procs extra threads at once (more would only share
// the same cores), and those threads run at nice 10 until they come back, so
// the threads running processors (and the fibers behind the hog) win the
// CPUs; blocked threads only count against max_threads, since a thread
// asleep in the kernel uses no CPU.
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <system_error>

#include "context/switch.hpp"
#include "io/event_loop.hpp"
#include "os/futex.hpp"
#include "sched/handoff.hpp"
#include "sched/scheduler.hpp"

namespace spindle::detail {
namespace {

constexpr std::uint32_t spare_woken = 1;
constexpr std::size_t spare_floor = 2;  // worker threads kept beyond procs

}  // namespace

// add_worker: a new worker object, owning p (busy) or, with p null, a spare.
worker* scheduler::add_worker(processor* p) {
  auto w = std::make_unique<worker>();
  worker* raw = w.get();
  std::lock_guard lock(workers_mutex_);
  raw->id = next_worker_id_++;
  raw->spin_budget_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.spin).count();
  if (p != nullptr) {
    raw->proc = p;
    raw->owned_word = owner_word_for(0, raw->id);
    p->owner_word.store(raw->owned_word | owner_busy, std::memory_order_relaxed);
    p->owner.store(raw, std::memory_order_relaxed);
  }
  workers_.push_back(std::move(w));
  return raw;
}

void scheduler::start_thread(worker& w) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);  // workers run only scheduler code
  pthread_t thread;
  struct start {
    scheduler* self;
    worker* w;
  };
  auto* arg = new start{this, &w};
  const int rc = pthread_create(
      &thread, &attr,
      [](void* a) -> void* {
        start s = *static_cast<start*>(a);
        delete static_cast<start*>(a);
        pthread_setname_np(pthread_self(), "spindle-worker");
        pthread_getcpuclockid(pthread_self(), &s.w->cpu_clock);
        s.w->tid = static_cast<pid_t>(syscall(SYS_gettid));
        s.w->cpu_clock_ready.store(true, std::memory_order_release);
        s.self->worker_loop(*s.w);
        return nullptr;
      },
      arg);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    delete arg;
    throw std::system_error(rc, std::generic_category(), "spindle: cannot start a worker thread");
  }
  pthread_detach(thread);
  const std::uint64_t alive = threads_alive_.fetch_add(1, std::memory_order_relaxed) + 1;
  std::uint64_t peak = threads_peak_.load(std::memory_order_relaxed);
  while (alive > peak && !threads_peak_.compare_exchange_weak(peak, alive)) {
  }
}

void scheduler::lose_processor(worker& w) noexcept {
  w.proc = nullptr;
  if (w.hog_handed_off.exchange(false, std::memory_order_relaxed)) {
    hogs_running_.fetch_sub(1, std::memory_order_relaxed);
  }
}

// demote: a hog that lost its processor keeps computing on its own thread;
// it should not take the CPU from threads that run processors. Its nice
// value goes to 10 (any thread may lower its own priority).
static void demote(worker& w) noexcept {
  if (w.tid != 0 && setpriority(PRIO_PROCESS, static_cast<id_t>(w.tid), 10) == 0) {
    w.demoted.store(true, std::memory_order_release);
  }
}

// restore_priority: before a demoted thread runs a processor again. Raising
// a priority needs CAP_SYS_NICE (or RLIMIT_NICE); without it the thread
// retires instead (returns false).
static bool restore_priority(worker& w) noexcept {
  if (!w.demoted.load(std::memory_order_acquire)) return true;
  if (setpriority(PRIO_PROCESS, 0, 0) != 0) return false;
  w.demoted.store(false, std::memory_order_relaxed);
  return true;
}

// become_spare: parks w until the monitor gives it a processor (true), or
// until it has been idle for options::retire_after with enough threads
// alive, in which case w is destroyed and the caller must return (false).
bool scheduler::become_spare(worker& w) {
  if (!restore_priority(w)) return retire(w);
  {
    std::lock_guard lock(workers_mutex_);
    w.park_word.store(0, std::memory_order_relaxed);
    spares_.push_back(&w);
  }
  const auto retire_after =
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.retire_after);
  const timespec timeout{static_cast<time_t>(retire_after.count() / 1'000'000'000),
                         static_cast<long>(retire_after.count() % 1'000'000'000)};
  for (;;) {
    futex_wait(w.park_word, 0, &timeout);
    if (w.park_word.load(std::memory_order_acquire) == spare_woken) return true;
    std::unique_lock lock(workers_mutex_);
    if (w.park_word.load(std::memory_order_acquire) == spare_woken) return true;
    const bool enough = workers_.size() > processors_.size() + spare_floor;
    auto it = std::find(spares_.begin(), spares_.end(), &w);
    if (!enough || it == spares_.end()) continue;  // keep waiting (or a claimer will wake us)
    spares_.erase(it);
    lock.unlock();
    return retire(w);
  }
}

// retire: removes w (whose thread is about to exit); returns false for become_spare.
bool scheduler::retire(worker& w) {
  std::lock_guard lock(workers_mutex_);
  workers_.erase(std::find_if(workers_.begin(), workers_.end(),
                              [&w](const auto& p) { return p.get() == &w; }));
  threads_retired_.fetch_add(1, std::memory_order_relaxed);
  threads_alive_.fetch_sub(1, std::memory_order_relaxed);
  return false;  // w is destroyed: the thread returns without touching it
}

worker* scheduler::take_spare() noexcept {
  std::lock_guard lock(workers_mutex_);
  if (spares_.empty()) return nullptr;
  worker* w = spares_.back();
  spares_.pop_back();
  return w;
}

// may_create_thread: the thread cap and the rate limit (a token bucket of
// max(8, procs) tokens refilled at procs per 10 ms). Monitor only.
bool scheduler::may_create_thread() noexcept {
  if (threads_alive_.load(std::memory_order_relaxed) >= options_.max_threads) {
    if (!thread_limit_reported_) {
      thread_limit_reported_ = true;
      std::fprintf(stderr,
                   "spindle: %zu worker threads are running, the limit (options::max_threads, "
                   "SPINDLE_MAX_THREADS); stuck processors now wait for a thread to come back\n",
                   options_.max_threads);
    }
    return false;
  }
  const double capacity = static_cast<double>(std::max<std::size_t>(8, processors_.size()));
  const std::int64_t now = steady_now_ns();
  thread_tokens_ =
      std::min(capacity, thread_tokens_ + static_cast<double>(processors_.size()) *
                                              static_cast<double>(now - tokens_refilled_ns_) / 1e7);
  tokens_refilled_ns_ = now;
  if (thread_tokens_ < 1) return false;
  thread_tokens_ -= 1;
  return true;
}

// new_spare: starts a thread that is a spare from birth, or returns nullptr
// when the cap, the rate limit or the system says no. A refusal by the
// system (pthread_create's EAGAIN: RLIMIT_NPROC, threads-max, no memory for
// the thread's stack) prints one line until a thread starts again: the
// monitor retries at the rate limit, and each retry would print otherwise.
worker* scheduler::new_spare() {
  if (!may_create_thread()) return nullptr;
  worker* w = add_worker(nullptr);
  try {
    start_thread(*w);
  } catch (const std::system_error& e) {
    if (!thread_refusal_reported_) {
      thread_refusal_reported_ = true;
      std::fprintf(stderr,
                   "%s; stuck processors wait for a thread to come back (reported once until a "
                   "thread starts again)\n",
                   e.what());
    }
    std::lock_guard lock(workers_mutex_);
    workers_.erase(std::find_if(workers_.begin(), workers_.end(),
                                [w](const auto& p) { return p.get() == w; }));
    return nullptr;
  }
  thread_refusal_reported_ = false;
  threads_created_.fetch_add(1, std::memory_order_relaxed);
  // The new thread parks itself as a spare; claim it straight back.
  for (;;) {
    {
      std::lock_guard lock(workers_mutex_);
      auto it = std::find(spares_.begin(), spares_.end(), w);
      if (it != spares_.end()) {
        spares_.erase(it);
        return w;
      }
    }
    sched_yield();
  }
}

// hand_off: gives p to a spare if p's owner is still stuck with `observed`.
bool scheduler::hand_off(processor& p, std::uint64_t observed, bool hog) {
  worker* spare = take_spare();
  if (spare == nullptr) spare = new_spare();
  if (spare == nullptr) return false;
  worker* stuck = p.owner.load(std::memory_order_relaxed);
  spare->proc = &p;
  spare->owned_word = owner_word_for(generation_of(observed) + 1, spare->id);
  if (hog) stuck->hog_handed_off.store(true, std::memory_order_relaxed);
  if (!p.owner_word.compare_exchange_strong(observed, spare->owned_word | owner_busy,
                                            std::memory_order_acq_rel)) {
    if (hog) stuck->hog_handed_off.store(false, std::memory_order_relaxed);
    spare->proc = nullptr;
    std::lock_guard lock(workers_mutex_);
    spares_.push_back(spare);
    return false;
  }
  p.owner.store(spare, std::memory_order_relaxed);
  p.preempt_requested.store(0, std::memory_order_relaxed);
  p.blocking_section.store(0, std::memory_order_relaxed);
  if (hog) {
    hogs_running_.fetch_add(1, std::memory_order_relaxed);
    demote(*stuck);
  }
  handoffs_.fetch_add(1, std::memory_order_relaxed);
  (hog ? hog_handoffs_ : blocked_handoffs_).fetch_add(1, std::memory_order_relaxed);
  spare->park_word.store(spare_woken, std::memory_order_release);
  futex_wake(spare->park_word, 1);
  return true;
}

// poke_monitor: wakes the monitor, asleep on its futex or, lazy, on its
// timerfd (monitor.cpp, "The lazy monitor").
void scheduler::poke_monitor() noexcept {
  monitor_word_.store(1, std::memory_order_seq_cst);
  futex_wake(monitor_word_, 1);
  if (monitor_lazy_.load(std::memory_order_seq_cst)) fire_monitor_timer();
}

// blocking_begin: the running fiber is about to block its thread. If fibers
// wait for this processor, hand it to a spare now; otherwise flag it, so the
// monitor hands it off without waiting for the blocked threshold.
void scheduler::blocking_begin() noexcept {
  worker* w = current_worker();
  if (w == nullptr || w->current == nullptr || w->proc == nullptr) return;
  processor& p = *w->proc;
  p.blocking_section.store(1, std::memory_order_relaxed);
  if (work_waiting(p)) poke_monitor();
}

void scheduler::blocking_end() noexcept {
  worker* w = current_worker();
  if (w == nullptr || w->proc == nullptr) return;
  w->proc->blocking_section.store(0, std::memory_order_relaxed);
}

bool scheduler::check_preempt() noexcept {
  worker* w = current_worker();
  processor* p = w->proc;
  const bool still_ours =
      p != nullptr && p->owner_word.load(std::memory_order_relaxed) == w->owned_word;
  if (still_ours && p->preempt_requested.load(std::memory_order_relaxed) == 0) return false;
  yield_fiber();
  return true;
}

}  // namespace spindle::detail
