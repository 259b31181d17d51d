// lib/io/event_loop.cpp: one libuv loop per processor, run by whichever
// worker owns the processor.
//
// Shape. Every processor has its own uv_loop_t, and the loop moves with the
// processor: the worker that owns the processor is the only thread that runs
// the loop, always from the scheduler (never inside a fiber), so when the
// monitor hands a stuck processor to another thread the loop goes along.
// There is no loop thread. A worker polls its loop without blocking every
// 61st fiber when the loop has I/O in progress or a timer due, and before it
// goes idle; an idle worker sleeps inside the loop (epoll), not on a futex,
// so one wake-up delivers the completion and runs the fiber that was waiting
// for it, on the same thread, with no hop. docs/design.md ("The loops")
// records the measurements against the single loop thread this replaced.
// Callbacks never run user code: they record results and make fibers
// runnable; those fibers are collected in the poller's `readied` list, and
// the scheduler queues them on the processor (offloading some when another
// processor is idle), so a burst of completions wakes at most one worker.
//
// Which loop. A handle lives on the loop it was created on, which is the
// current processor's (processor 0's for a plain thread): a listener and the
// connections it accepts, a connection a fiber dialled, a file operation.
// Operations on an existing handle are submitted to its loop
// (event_loop::of(handle->loop)) from whichever processor the fiber runs on.
//
// Submissions. Any thread appends a loop_request to a locked FIFO, sets
// submissions_waiting_, issues a seq_cst fence and uv_async_send. libuv
// coalesces sends (one callback may answer many), and before 1.53 needs that
// fence to not lose one; so on_async drains the FIFO until it is empty. The
// same uv_async_send is how the scheduler wakes a worker sleeping in its
// loop (scheduler::wake_processor).
//
// Timers. Each loop keeps its own timer wheel (timer_wheel.hpp) under its
// own lock: a fiber's sleep goes on the wheel of the processor it runs on,
// so processors never contend for a timer lock, and the processor that armed
// a timer fires it and runs the woken fiber. libuv polls one timerfd per
// loop (absolute, nanoseconds, CLOCK_MONOTONIC like steady_clock), so
// 100,000 sleeping fibers cost wheel entries and one libuv handle per
// processor. libuv's own timers count whole milliseconds from a cached
// clock, which would make every sleep up to a millisecond late; the timerfd
// is exact to the kernel's timer slack. A timer may fire up to
// options::timer_slack (200 us) after its deadline, never before: the loop
// wakes at the latest deadline within one slack of the earliest
// (timer_wheel::wake_time), so timers set close together fire together.
// The owner sets the timerfd just before it blocks in the loop
// (plan_timer_fd), once per sleep however many timers its fibers set
// meanwhile; another thread adding a timer that must fire before the
// timerfd's time re-arms it itself (under the lock, so two arms cannot
// cross), which also wakes the owner if it sleeps in the loop: a new short
// sleep preempts a long one. An expired timerfd stays readable until the
// next arm resets it; it is read only if it comes up twice before that.
// Expired entries are taken under the lock and fired outside it (firing = 1
// meanwhile, so cancel_timer can wait for a fire in progress). A busy worker
// fires due timers at its periodic poll, so timers are not starved by a
// busy queue.
//
// The monitor. A loop whose owner is stuck in a fiber (a raw blocking call)
// is not polled; the monitor counts a due timer, a submission or a ready
// descriptor on a stuck processor as waiting work (needs_service) and hands
// the processor, loop included, to another thread.
//
// Exit. The loops' handles stay referenced (so a blocking poll sleeps instead
// of spinning), but no thread ever waits for a loop to finish, so they never
// keep a finished program alive.
#include "io/event_loop.hpp"

#include <poll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "sched/handoff.hpp"
#include "sched/park.hpp"
#include "sched/scheduler.hpp"

namespace spindle::detail {
namespace {

void check_uv(int rc, const char* what, int index) {
  if (rc != 0) {
    std::fprintf(stderr, "spindle: fatal: %s (loop of processor %d): %s\n", what, index,
                 uv_strerror(rc));
    std::abort();
  }
}

}  // namespace

std::int64_t steady_now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

event_loop& event_loop::current() { return scheduler::get().current_loop(); }

event_loop::event_loop(int index, std::int64_t timer_slack_ns)
    : index_(index),
      slack_ns_(std::max<std::int64_t>(1, timer_slack_ns)),
      timers_(slack_ns_, steady_now_ns()) {
  check_uv(uv_loop_init(&loop_), "uv_loop_init", index_);
  loop_.data = this;
  check_uv(uv_async_init(&loop_, &async_, on_async), "uv_async_init", index_);
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (timer_fd_ < 0) check_uv(uv_translate_sys_error(errno), "timerfd_create", index_);
  check_uv(uv_poll_init(&loop_, &timer_poll_, timer_fd_), "uv_poll_init", index_);
  check_uv(uv_poll_start(&timer_poll_, UV_READABLE, on_timer_fd), "uv_poll_start", index_);
  uv_unref(reinterpret_cast<uv_handle_t*>(&timer_poll_));
}

void event_loop::submit(loop_request* r) noexcept {
  r->next = nullptr;
  {
    std::lock_guard lock(submit_lock_);
    if (submitted_tail_ != nullptr) {
      submitted_tail_->next = r;
    } else {
      submitted_head_ = r;
    }
    submitted_tail_ = r;
    submissions_waiting_.store(true, std::memory_order_relaxed);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  uv_async_send(&async_);
}

void event_loop::drain_submissions() {
  for (;;) {
    loop_request* batch;
    {
      std::lock_guard lock(submit_lock_);
      batch = submitted_head_;
      submitted_head_ = submitted_tail_ = nullptr;
      submissions_waiting_.store(false, std::memory_order_relaxed);
    }
    if (batch == nullptr) return;
    while (batch != nullptr) {
      loop_request* r = batch;
      batch = r->next;
      r->run(r, &loop_);
    }
  }
}

void event_loop::poll(bool block, std::vector<fiber*>& readied) {
  scheduler::set_ready_batch(&readied);
  if (block) {
    fire_due();
    if (readied.empty()) {
      plan_timer_fd();
    } else {
      block = false;  // fibers to run: no sleeping
    }
  }
  uv_run(&loop_, block ? UV_RUN_ONCE : UV_RUN_NOWAIT);
  // A busy processor's periodic poll fires due timers without waiting for
  // the timerfd.
  fire_due();
  scheduler::set_ready_batch(nullptr);
}

void event_loop::fire_due() {
  if (next_wake_.load(std::memory_order_relaxed) <= steady_now_ns()) fire_expired();
}

// plan_timer_fd: the owner, about to block: sets the timerfd for the next
// wake the wheel asks for, unless it is set for it already.
void event_loop::plan_timer_fd() noexcept {
  std::lock_guard lock(timer_lock_);
  const std::int64_t wake = timers_.wake_time(slack_ns_);
  if (wake != armed_deadline_ || timer_fd_expired_) arm_timer_fd_locked(wake);
}

// owned_by_caller: whether the calling thread owns this loop's processor
// (a fiber's thread may have lost it to the monitor since it last checked).
bool event_loop::owned_by_caller() const noexcept {
  const worker* w = current_worker();
  if (w == nullptr || w->proc == nullptr || w->proc->loop != this) return false;
  const std::uint64_t word = w->proc->owner_word.load(std::memory_order_acquire);
  return (word & ~owner_busy) == (w->owned_word & ~owner_busy);
}

bool event_loop::worth_polling(std::int64_t now) const noexcept {
  // Our own async handle is the one active, referenced handle of an idle loop.
  return loop_.active_handles > 1 || loop_.active_reqs.count != 0 ||
         submissions_waiting_.load(std::memory_order_relaxed) ||
         next_wake_.load(std::memory_order_relaxed) <= now;
}

bool event_loop::needs_service(std::int64_t now) const noexcept {
  if (submissions_waiting_.load(std::memory_order_relaxed) ||
      next_wake_.load(std::memory_order_relaxed) <= now) {
    return true;
  }
  pollfd backend{uv_backend_fd(&loop_), POLLIN, 0};
  return ::poll(&backend, 1, 0) > 0;
}

void event_loop::add_timer(timer_entry* e) noexcept { add_timer(e, owned_by_caller()); }

void event_loop::add_timer(timer_entry* e, bool by_owner) noexcept {
  std::lock_guard lock(timer_lock_);
  e->home = this;
  e->cancelled = false;
  rearm_locked(e, e->deadline_ns, by_owner);
}

void event_loop::add_timer_after_switch(worker& w, timer_entry* e) noexcept {
  if (w.proc != nullptr) {
    w.proc->loop->add_timer(e, true);
  } else {
    current().add_timer(e);
  }
}

bool event_loop::rearm_timer(timer_entry* e, std::int64_t deadline_ns) noexcept {
  event_loop& home = *e->home;
  std::lock_guard lock(home.timer_lock_);
  if (e->cancelled) return false;
  return home.rearm_locked(e, deadline_ns, home.owned_by_caller());
}

bool event_loop::rearm_locked(timer_entry* e, std::int64_t deadline_ns, bool by_owner) noexcept {
  e->deadline_ns = deadline_ns;
  timers_.push(e);
  const std::int64_t due =
      deadline_ns < INT64_MAX - slack_ns_ ? deadline_ns + slack_ns_ : INT64_MAX;
  if (due < next_wake_.load(std::memory_order_relaxed)) {
    next_wake_.store(due, std::memory_order_relaxed);
  }
  // The owner sets the timerfd before it next blocks (plan_timer_fd).
  if (due < armed_deadline_ && !by_owner) {
    arm_timer_fd_locked(timers_.wake_time(slack_ns_));
  }
  return true;
}

// arm_timer_fd_locked: sets the timerfd to an absolute deadline (INT64_MAX
// disarms it). Caller holds timer_lock_.
void event_loop::arm_timer_fd_locked(std::int64_t deadline_ns) noexcept {
  armed_deadline_ = deadline_ns;
  timer_fd_expired_ = false;  // setting a timerfd clears its expirations
  itimerspec spec{};
  if (deadline_ns != INT64_MAX) {
    const std::int64_t at = deadline_ns > 0 ? deadline_ns : 1;  // 0 would disarm
    spec.it_value.tv_sec = static_cast<time_t>(at / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(at % 1'000'000'000);
  }
  timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &spec, nullptr);
}

bool event_loop::cancel_timer(timer_entry* e) noexcept {
  if (e->home == nullptr) return false;  // never armed
  {
    event_loop& home = *e->home;
    std::lock_guard lock(home.timer_lock_);
    e->cancelled = true;
    if (e->heap_index != timer_entry::not_queued) {
      home.timers_.remove(e);  // next_wake_ may now be early: a wasted wake at worst
      return true;
    }
  }
  await_fired(e);
  return false;
}

void event_loop::await_fired(timer_entry* e) noexcept {
  for (int spins = 0; e->firing.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < 64) {
      cpu_relax();
    } else {
      sched_yield();
    }
  }
}

std::size_t event_loop::pending_timers() noexcept {
  std::size_t total = 0;
  scheduler& s = scheduler::get();
  for (std::size_t i = 0; i < s.procs(); ++i) {
    event_loop& l = s.loop_of(i);
    std::lock_guard lock(l.timer_lock_);
    total += l.timers_.size();
  }
  return total;
}

std::size_t event_loop::handle_count() noexcept {
  std::size_t total = 0;
  scheduler& s = scheduler::get();
  for (std::size_t i = 0; i < s.procs(); ++i) total += s.loop_of(i).count_handles();
  return total;
}

// count_handles: one round trip to this loop's owner, which walks its handles.
std::size_t event_loop::count_handles() noexcept {
  struct count_request : loop_request {
    waiter parked;
    std::size_t count = 0;
    event_loop* loop = nullptr;
  } request;
  request.loop = this;
  request.run = [](loop_request* self, uv_loop_t* loop) noexcept {
    auto* r = static_cast<count_request*>(self);
    uv_walk(
        loop, [](uv_handle_t*, void* n) { ++*static_cast<std::size_t*>(n); }, &r->count);
    if (r->parked.try_claim()) r->parked.wake();
  };
  request.parked.park_then(
      [](void* r) {
        auto* req = static_cast<count_request*>(r);
        req->loop->submit(req);
      },
      &request);
  return request.count;
}

void event_loop::fire_expired() {
  for (;;) {
    expired_.clear();
    {
      std::lock_guard lock(timer_lock_);
      timers_.take_due(steady_now_ns(), expired_);
      for (timer_entry* e : expired_) e->firing.store(1, std::memory_order_relaxed);
      next_wake_.store(timers_.wake_time(slack_ns_), std::memory_order_relaxed);
    }
    if (expired_.empty()) return;
    for (timer_entry* e : expired_) {
      if (e->frees_itself) {
        e->fire(e);
        continue;
      }
      e->fire(e);
      e->firing.store(0, std::memory_order_release);  // last touch: e may be gone after this
    }
  }
}

void event_loop::on_async(uv_async_t* handle) { event_loop::of(handle->loop).drain_submissions(); }

void event_loop::on_timer_fd(uv_poll_t* handle, int, int) {
  event_loop& self = event_loop::of(handle->loop);
  {
    std::lock_guard lock(self.timer_lock_);
    if (self.timer_fd_expired_) {  // up a second time before an arm: clear it
      std::uint64_t expirations;
      [[maybe_unused]] const ssize_t n = read(self.timer_fd_, &expirations, sizeof expirations);
    }
    self.timer_fd_expired_ = true;
  }
  self.fire_expired();
}

}  // namespace spindle::detail
