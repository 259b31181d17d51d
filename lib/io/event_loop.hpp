// lib/io/event_loop.hpp: the per-processor libuv loops that drive every timer
// and I/O operation; the design comment is at the top of event_loop.cpp.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "sched/spinlock.hpp"
#include "time/timer_wheel.hpp"

namespace spindle::detail {

struct worker;

struct fiber;

// loop_request: work for a loop's owner. Owned by the submitter, which must
// keep it alive until run() has been called (and whatever run() started has
// completed). Runs on the loop's owner, in the scheduler; must not block.
struct loop_request {
  void (*run)(loop_request* self, uv_loop_t* loop) noexcept = nullptr;
  loop_request* next = nullptr;  // guarded by the loop's submit lock
};

class event_loop {
 public:
  // event_loop: one processor's loop. Created by the scheduler.
  event_loop(int index, std::int64_t timer_slack_ns);
  event_loop(const event_loop&) = delete;
  event_loop& operator=(const event_loop&) = delete;

  // current: the loop of the processor the caller runs on; a thread without
  // a processor (a plain thread) uses processor 0's. Starts the runtime.
  static event_loop& current();
  // of: the loop a libuv loop belongs to (its data pointer).
  static event_loop& of(const uv_loop_t* loop) noexcept {
    return *static_cast<event_loop*>(loop->data);
  }

  // Any thread.
  // submit: queues r; the loop's owner runs it soon. Does not block.
  void submit(loop_request* r) noexcept;
  // add_timer: arms e on this loop for e->deadline_ns. Does not block.
  // `by_owner`: the caller is the worker that owns this loop's processor,
  // in the scheduler (it sets the timerfd before it next blocks).
  void add_timer(timer_entry* e) noexcept;
  void add_timer(timer_entry* e, bool by_owner) noexcept;
  // add_timer_after_switch: arms e from worker w's after-switch step: on
  // its processor's loop or, if w lost the processor meanwhile (a
  // handoff), on the loop a plain thread would use.
  static void add_timer_after_switch(worker& w, timer_entry* e) noexcept;
  // rearm_timer: re-arms e on the loop it last ran on, unless e was
  // cancelled meanwhile (for periodic timers re-arming themselves from
  // fire()). Returns whether it re-armed.
  static bool rearm_timer(timer_entry* e, std::int64_t deadline_ns) noexcept;
  // cancel_timer: disarms e. Returns true if e was still pending (it will not
  // fire); false if it already fired. If e is firing right now, waits until
  // fire() returned, so the caller may destroy e afterwards. Does not park.
  static bool cancel_timer(timer_entry* e) noexcept;
  // await_fired: for an entry known to have fired (its fire() ran far
  // enough to say so): waits until fire() returned, so the caller may
  // destroy e. cancel_timer without the timer lock. Does not park.
  static void await_fired(timer_entry* e) noexcept;
  // pending_timers: timers armed on every loop (for tests and stats).
  static std::size_t pending_timers() noexcept;
  // handle_count: libuv handles open on every loop (for tests and leak
  // checks). Parks the fiber (blocks a thread) for a round trip to each loop.
  static std::size_t handle_count() noexcept;
  // wake: makes a blocking poll() return. Async-signal-safe.
  void wake() noexcept { uv_async_send(&async_); }
  // needs_service: whether the loop has something to do that only a poll
  // will do (a submission, a due timer, a ready descriptor). For the monitor.
  bool needs_service(std::int64_t now) const noexcept;

  // The owner only: the worker owning the processor, in the scheduler.
  // poll: one loop iteration; if `block`, sleeps until something happens
  // (I/O, a timer, a submission, wake()). Fibers it made runnable are
  // appended to `readied`.
  void poll(bool block, std::vector<fiber*>& readied);
  // worth_polling: whether a busy processor should poll now: I/O or requests
  // in progress, submissions waiting, or a timer due at `now`.
  bool worth_polling(std::int64_t now) const noexcept;
  // scratch_buffer: a buffer for libuv's alloc callbacks whose data the read
  // callback copies out at once (UDP).
  uv_buf_t scratch_buffer() noexcept {
    return uv_buf_init(scratch_, static_cast<unsigned>(sizeof scratch_));
  }

 private:
  void drain_submissions();
  void fire_expired();
  void fire_due();
  void plan_timer_fd() noexcept;
  bool owned_by_caller() const noexcept;
  void arm_timer_fd_locked(std::int64_t deadline_ns) noexcept;
  bool rearm_locked(timer_entry* e, std::int64_t deadline_ns, bool by_owner) noexcept;
  std::size_t count_handles() noexcept;

  static void on_async(uv_async_t* handle);
  static void on_timer_fd(uv_poll_t* handle, int status, int events);

  uv_loop_t loop_;               // the owner only, after construction
  uv_async_t async_;             // the one cross-thread entry point
  const int index_;              // the processor's index, for error messages
  const std::int64_t slack_ns_;  // options::timer_slack
  int timer_fd_ = -1;  // a timerfd: when the owner, asleep in the loop, must wake for timers
  uv_poll_t timer_poll_;
  char scratch_[64 * 1024];

  spinlock submit_lock_;
  loop_request* submitted_head_ = nullptr;  // guarded by submit_lock_, FIFO
  loop_request* submitted_tail_ = nullptr;
  std::atomic<bool> submissions_waiting_{false};

  spinlock timer_lock_;
  timer_wheel timers_;                       // guarded by timer_lock_
  std::int64_t armed_deadline_ = INT64_MAX;  // guarded by timer_lock_: what timer_fd_ is set to
  bool timer_fd_expired_ = false;            // guarded by timer_lock_: readable until the next arm
  // next_wake_: when the owner should fire timers (at most one slack after
  // the earliest deadline); written under the lock, read by polls and the monitor.
  std::atomic<std::int64_t> next_wake_{INT64_MAX};
  std::vector<timer_entry*> expired_;  // the owner only: fire_expired's batch
};

// steady_now_ns: the steady clock in nanoseconds.
std::int64_t steady_now_ns() noexcept;

}  // namespace spindle::detail
