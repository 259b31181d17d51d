// lib/io/event_loop.cpp: one libuv loop on its own thread.
//
// Shape: a single loop thread feeds the processors (docs/design.md, "The
// loop", records the measurements behind this choice). The loop never runs
// user code: completion callbacks only record results and make the waiting
// fibers runnable.
//
// Submissions. Any thread appends a loop_request to a locked FIFO, then
// issues a seq_cst fence and uv_async_send. libuv coalesces sends (one
// callback may answer many), and before 1.53 needs that fence to not lose
// one; so on_async drains the FIFO until it is empty, every time.
//
// Timers. Timers live in our own heap (timer_heap.hpp) under timer_lock_;
// libuv polls a single timerfd set (absolute, nanoseconds, CLOCK_MONOTONIC
// like steady_clock) to the earliest deadline, so 100,000 sleeping fibers
// cost 100,000 heap entries and one libuv handle. libuv's own timers count
// whole milliseconds from a cached clock, which would make every sleep up to
// a millisecond late; the timerfd is exact to the kernel's timer slack. Any
// thread adding a new earliest timer re-arms the timerfd itself (under the
// lock, so two arms cannot cross), which also wakes the loop when it sleeps
// on a later deadline: a new short sleep preempts a long one. The loop wakes
// at deadlines rounded up to options::timer_slack (200 us): timers due in the
// same slot fire together, so a hundred fibers sleeping 1 ms in a loop cost
// a few thousand wake-ups a second, not a hundred thousand. No timer ever
// fires before its deadline. Expired
// entries are popped under the lock and fired outside it (firing = 1
// meanwhile, so cancel_timer can wait for a fire in progress).
//
// Wake-ups in batches. Fibers made runnable on the loop thread go into
// ready_batch_ instead of one by one to the global queue; the batch is
// flushed in the prepare phase (before the loop may block in poll) and the
// check phase (after the poll's callbacks), with one fence and at most one
// wakep(): no herd of woken workers.
//
// Exit. The loop thread is detached and never stops; its handles stay
// referenced (so uv_run blocks instead of spinning) but no thread ever waits
// for the loop, so it never keeps a finished program alive.
#include "io/event_loop.hpp"

#include <pthread.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "sched/park.hpp"
#include "sched/scheduler.hpp"

namespace spindle::detail {
namespace {

std::atomic<event_loop*> the_loop{nullptr};
__attribute__((tls_model("initial-exec"))) thread_local bool is_loop_thread = false;

void check_uv(int rc, const char* what) {
  if (rc != 0) {
    std::fprintf(stderr, "spindle: fatal: %s: %s\n", what, uv_strerror(rc));
    std::abort();
  }
}

}  // namespace

std::int64_t steady_now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

event_loop& event_loop::get() {
  if (event_loop* l = the_loop.load(std::memory_order_acquire)) return *l;
  static std::once_flag once;
  std::call_once(once, [] {
    auto* l = new event_loop;  // never destroyed, like the scheduler
    the_loop.store(l, std::memory_order_release);
  });
  return *the_loop.load(std::memory_order_acquire);
}

bool event_loop::on_loop_thread() noexcept { return is_loop_thread; }

event_loop::event_loop()
    : slack_ns_(std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::nanoseconds>(
                                              scheduler::get().config().timer_slack)
                                              .count())) {
  check_uv(uv_loop_init(&loop_), "uv_loop_init");
  loop_.data = this;
  check_uv(uv_async_init(&loop_, &async_, on_async), "uv_async_init");
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (timer_fd_ < 0) check_uv(uv_translate_sys_error(errno), "timerfd_create");
  check_uv(uv_poll_init(&loop_, &timer_poll_, timer_fd_), "uv_poll_init");
  check_uv(uv_poll_start(&timer_poll_, UV_READABLE, on_timer_fd), "uv_poll_start");
  uv_unref(reinterpret_cast<uv_handle_t*>(&timer_poll_));
  check_uv(uv_prepare_init(&loop_, &prepare_), "uv_prepare_init");
  check_uv(uv_prepare_start(&prepare_, on_prepare), "uv_prepare_start");
  uv_unref(reinterpret_cast<uv_handle_t*>(&prepare_));
  check_uv(uv_check_init(&loop_, &check_), "uv_check_init");
  check_uv(uv_check_start(&check_, on_check), "uv_check_start");
  uv_unref(reinterpret_cast<uv_handle_t*>(&check_));
  thread_ = std::thread([this] { run(); });
  thread_.detach();
}

void event_loop::run() {
  pthread_setname_np(pthread_self(), "spindle-loop");
  is_loop_thread = true;
  prctl(PR_SET_TIMERSLACK, 1000UL);  // 1 us: timers fire close to their deadline
  scheduler::set_ready_batch(&ready_batch_);
  for (;;) uv_run(&loop_, UV_RUN_DEFAULT);
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
    }
    if (batch == nullptr) return;
    while (batch != nullptr) {
      loop_request* r = batch;
      batch = r->next;
      r->run(r, &loop_);
    }
  }
}

void event_loop::add_timer(timer_entry* e) noexcept {
  std::lock_guard lock(timer_lock_);
  e->cancelled = false;
  timers_.push(e);
  if (wake_time(e->deadline_ns) < armed_deadline_) arm_timer_fd_locked(wake_time(e->deadline_ns));
}

bool event_loop::rearm_timer(timer_entry* e, std::int64_t deadline_ns) noexcept {
  std::lock_guard lock(timer_lock_);
  if (e->cancelled) return false;
  e->deadline_ns = deadline_ns;
  timers_.push(e);
  if (wake_time(deadline_ns) < armed_deadline_) arm_timer_fd_locked(wake_time(deadline_ns));
  return true;
}

// arm_timer_fd_locked: sets the timerfd to an absolute deadline (INT64_MAX
// disarms it). Caller holds timer_lock_.
void event_loop::arm_timer_fd_locked(std::int64_t deadline_ns) noexcept {
  armed_deadline_ = deadline_ns;
  itimerspec spec{};
  if (deadline_ns != INT64_MAX) {
    const std::int64_t at = deadline_ns > 0 ? deadline_ns : 1;  // 0 would disarm
    spec.it_value.tv_sec = static_cast<time_t>(at / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(at % 1'000'000'000);
  }
  timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &spec, nullptr);
}

bool event_loop::cancel_timer(timer_entry* e) noexcept {
  {
    std::lock_guard lock(timer_lock_);
    e->cancelled = true;
    if (e->heap_index != timer_entry::not_queued) {
      timers_.remove(e);
      return true;
    }
  }
  for (int spins = 0; e->firing.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < 64) {
      cpu_relax();
    } else {
      sched_yield();
    }
  }
  return false;
}

std::size_t event_loop::pending_timers() noexcept {
  std::lock_guard lock(timer_lock_);
  return timers_.size();
}

std::size_t event_loop::handle_count() noexcept {
  struct count_request : loop_request {
    waiter parked;
    std::size_t count = 0;
  } request;
  request.run = [](loop_request* self, uv_loop_t* loop) noexcept {
    auto* r = static_cast<count_request*>(self);
    uv_walk(
        loop, [](uv_handle_t*, void* n) { ++*static_cast<std::size_t*>(n); }, &r->count);
    if (r->parked.try_claim()) r->parked.wake();
  };
  request.parked.park_then([](void* r) { event_loop::get().submit(static_cast<loop_request*>(r)); },
                           static_cast<loop_request*>(&request));
  return request.count;
}

void event_loop::fire_expired() {
  for (;;) {
    timer_entry* expired = nullptr;
    timer_entry** tail = &expired;
    {
      std::lock_guard lock(timer_lock_);
      const std::int64_t now = steady_now_ns();
      while (timer_entry* e = timers_.top()) {
        if (e->deadline_ns > now) break;
        timers_.pop();
        e->firing.store(1, std::memory_order_relaxed);
        e->next_expired = nullptr;
        *tail = e;
        tail = &e->next_expired;
      }
      const timer_entry* next = timers_.top();
      arm_timer_fd_locked(next ? wake_time(next->deadline_ns) : INT64_MAX);
    }
    if (expired == nullptr) return;
    while (expired != nullptr) {
      timer_entry* e = expired;
      expired = e->next_expired;
      if (e->frees_itself) {
        e->fire(e);
        continue;
      }
      e->fire(e);
      e->firing.store(0, std::memory_order_release);  // last touch: e may be gone after this
    }
  }
}

void event_loop::flush_ready() {
  if (!ready_batch_.empty()) scheduler::get().ready_all(ready_batch_);
}

void event_loop::on_async(uv_async_t* handle) {
  auto* self = static_cast<event_loop*>(handle->loop->data);
  self->drain_submissions();
}

void event_loop::on_timer_fd(uv_poll_t* handle, int, int) {
  auto* self = static_cast<event_loop*>(handle->loop->data);
  std::uint64_t expirations;
  [[maybe_unused]] const ssize_t n = read(self->timer_fd_, &expirations, sizeof expirations);
  self->fire_expired();
}

void event_loop::on_prepare(uv_prepare_t* handle) {
  static_cast<event_loop*>(handle->loop->data)->flush_ready();
}

void event_loop::on_check(uv_check_t* handle) {
  static_cast<event_loop*>(handle->loop->data)->flush_ready();
}

}  // namespace spindle::detail
