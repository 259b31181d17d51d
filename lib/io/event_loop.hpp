// lib/io/event_loop.hpp: the libuv loop that drives every timer and I/O
// operation; the design comment is at the top of event_loop.cpp.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "sched/run_queue.hpp"
#include "sched/spinlock.hpp"
#include "time/timer_heap.hpp"

namespace spindle::detail {

// loop_request: work for the loop thread. Owned by the submitter, which must
// keep it alive until run() has been called (and whatever run() started has
// completed). Runs on the loop thread; must not block.
struct loop_request {
  void (*run)(loop_request* self, uv_loop_t* loop) noexcept = nullptr;
  loop_request* next = nullptr;  // guarded by the loop's submit lock
};

class event_loop {
 public:
  // get: the loop, started (with its thread) on first use.
  static event_loop& get();
  // on_loop_thread: whether the caller is the loop thread.
  static bool on_loop_thread() noexcept;

  // submit: queues r; the loop thread runs it soon. Any thread; does not block.
  void submit(loop_request* r) noexcept;

  // add_timer: arms e for e->deadline_ns. Any thread; does not block.
  void add_timer(timer_entry* e) noexcept;
  // rearm_timer: as add_timer, unless e was cancelled meanwhile (for periodic
  // timers re-arming themselves from fire()). Returns whether it re-armed.
  bool rearm_timer(timer_entry* e, std::int64_t deadline_ns) noexcept;
  // cancel_timer: disarms e. Returns true if e was still pending (it will not
  // fire); false if it already fired. If e is firing right now, waits until
  // fire() returned, so the caller may destroy e afterwards. Does not park.
  bool cancel_timer(timer_entry* e) noexcept;
  // pending_timers: how many timers are armed (for tests and stats).
  std::size_t pending_timers() noexcept;
  // handle_count: libuv handles open on the loop (for tests and leak checks).
  // Blocks the caller (parks a fiber) for one loop round trip.
  std::size_t handle_count() noexcept;

  event_loop();

 private:
  void run();
  void drain_submissions();
  void fire_expired();
  void arm_timer_fd_locked(std::int64_t deadline_ns) noexcept;
  // wake_time: when the loop wakes for a deadline: rounded up to the slack.
  std::int64_t wake_time(std::int64_t deadline_ns) const noexcept {
    return (deadline_ns + slack_ns_ - 1) / slack_ns_ * slack_ns_;
  }
  void flush_ready();

  static void on_async(uv_async_t* handle);
  static void on_timer_fd(uv_poll_t* handle, int status, int events);
  static void on_prepare(uv_prepare_t* handle);
  static void on_check(uv_check_t* handle);

  uv_loop_t loop_;               // loop thread only, after construction
  uv_async_t async_;             // the one cross-thread entry point
  const std::int64_t slack_ns_;  // options::timer_slack, at least 1
  int timer_fd_ = -1;            // a timerfd armed for the earliest entry of timers_
  uv_poll_t timer_poll_;
  uv_prepare_t prepare_;
  uv_check_t check_;

  spinlock submit_lock_;
  loop_request* submitted_head_ = nullptr;  // guarded by submit_lock_, FIFO
  loop_request* submitted_tail_ = nullptr;

  spinlock timer_lock_;
  timer_heap timers_;                        // guarded by timer_lock_
  std::int64_t armed_deadline_ = INT64_MAX;  // guarded by timer_lock_: what timer_fd_ is set to

  std::vector<fiber*> ready_batch_;  // loop thread only: fibers readied during this iteration
  std::thread thread_;
};

// steady_now_ns: the steady clock in nanoseconds.
std::int64_t steady_now_ns() noexcept;

}  // namespace spindle::detail
