// lib/io/loop_op.hpp: one blocking operation carried out by an event loop.
//
// Every libuv call spindle makes for a fiber (connect, write, getaddrinfo,
// the uv_fs_* calls, closing a handle...) is a loop_op: a loop_request that
// lives on the blocked caller's stack and whose run() starts the libuv
// operation on its target loop (the handle's, or the caller's processor's for
// a new handle), run by that loop's owner ("the loop" below). The protocol:
//   1. wait() parks the caller with waiter::park_then, submitting the op
//      only once the fiber has switched out (a completion can never wake a
//      fiber that is still running).
//   2. run() (on the loop) starts the libuv call and, when the op has a
//      deadline, arms `timer` on the same loop.
//   3. The libuv callback (on the loop) calls finish(status), which records
//      the result and wakes the caller, exactly once.
//   4. If the deadline passes first, the timer fires on the loop:
//      it sets timed_out and calls on_timeout, which must lead to finish()
//      (by cancelling the libuv request, closing its handle, or detaching
//      a heap-owned request and calling finish itself).
//   5. Back on its stack, the caller disarms the timer (waiting out a fire
//      in progress) before the op goes out of scope.
// Because the timer, the callbacks and finish() all run on the one loop (one
// thread at a time: the owner of its processor), "finished" needs no lock: whichever comes first
// wins, and nothing on the loop touches the op after finish() woke its owner. The op's memory
// therefore needs no reference count.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <system_error>

#include "io/event_loop.hpp"
#include "sched/park.hpp"
#include "spindle/detail/deadline.hpp"

namespace spindle::detail {

class loop_op : public loop_request {
 public:
  // loop_op: an op whose run() is `start`, on loop `on` (an existing
  // handle's loop, or the caller's for a new one). `deadline` may be
  // time_point::max().
  explicit loop_op(void (*start)(loop_request*, uv_loop_t*) noexcept,
                   std::chrono::steady_clock::time_point deadline = time_point::max(),
                   event_loop& on = event_loop::current()) noexcept;
  loop_op(const loop_op&) = delete;
  loop_op& operator=(const loop_op&) = delete;

  // wait: submits the op and returns its status once finished. Parks the
  // fiber; blocks a plain thread. Never throws.
  int wait() noexcept;
  // arm_deadline: on the loop, from run(), once the libuv call started.
  void arm_deadline() noexcept;
  // finish: on the loop. Records `status` and wakes the owner, the first
  // time only; later calls do nothing.
  void finish(int status) noexcept;

  event_loop& target() const noexcept { return *target_; }
  bool finished() const noexcept { return finished_; }
  bool timed_out() const noexcept { return timed_out_; }
  int status() const noexcept { return status_; }

  // on_timeout: on the loop, when the deadline passed before finish().
  // Must lead to finish(). Default: finish(UV_ETIMEDOUT) at once, for ops
  // whose libuv part is already detached from this op.
  void (*on_timeout)(loop_op* self) noexcept = nullptr;

 private:
  struct deadline_timer : timer_entry {
    loop_op* op = nullptr;
  };
  static void fire(timer_entry* e) noexcept;

  event_loop* target_;
  waiter* parked_ = nullptr;
  deadline_timer timer_;
  bool armed_ = false;      // the loop writes, owner reads after wake
  bool finished_ = false;   // the loop only until the owner is woken
  bool timed_out_ = false;  // the loop only until the owner is woken
  int status_ = 0;
};

// uv_error_code: a libuv status as an error_code: errno values in
// std::generic_category(), the rest (UV_EOF, UV_EAI_*) in uv_category().
std::error_code uv_error_code(int status) noexcept;

// throw_net_error: throws net_error (or timeout_error for UV_ETIMEDOUT)
// with what() "OP ADDRESS: message".
[[noreturn]] void throw_net_error(const char* op, const std::string& address, int status);

}  // namespace spindle::detail
