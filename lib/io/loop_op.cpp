// lib/io/loop_op.cpp: loop_op, run_on_loop, close_handle and the error
// helpers; the protocol is described in loop_op.hpp.
#include "io/loop_op.hpp"

#include "spindle/net.hpp"

namespace spindle::detail {
namespace {

void submit_op(void* op) { event_loop::get().submit(static_cast<loop_op*>(op)); }

void finish_now(loop_op* op) noexcept { op->finish(UV_ETIMEDOUT); }

}  // namespace

loop_op::loop_op(void (*start)(loop_request*, uv_loop_t*) noexcept,
                 std::chrono::steady_clock::time_point deadline) noexcept {
  run = start;
  on_timeout = finish_now;
  timer_.op = this;
  timer_.fire = fire;
  timer_.deadline_ns =
      deadline == time_point::max()
          ? INT64_MAX
          : std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch())
                .count();
}

int loop_op::wait() noexcept {
  waiter w;
  parked_ = &w;
  w.park_then(submit_op, this);
  if (armed_) event_loop::get().cancel_timer(&timer_);
  return status_;
}

void loop_op::arm_deadline() noexcept {
  if (timer_.deadline_ns == INT64_MAX || finished_) return;
  armed_ = true;
  event_loop::get().add_timer(&timer_);
}

void loop_op::finish(int status) noexcept {
  if (finished_) return;
  finished_ = true;
  status_ = status;
  waiter* w = parked_;
  if (w->try_claim()) w->wake();  // the only claimer: loop_op parks without a deadline
}

void loop_op::fire(timer_entry* e) noexcept {
  loop_op* op = static_cast<deadline_timer*>(e)->op;
  if (op->finished_) return;
  op->timed_out_ = true;
  op->on_timeout(op);
}

namespace {

struct call_on_loop : loop_request {
  void (*fn)(void*, uv_loop_t*) noexcept;
  void* arg;
  waiter* parked;
};

void run_call(loop_request* r, uv_loop_t* loop) noexcept {
  auto* call = static_cast<call_on_loop*>(r);
  call->fn(call->arg, loop);
  waiter* w = call->parked;
  if (w->try_claim()) w->wake();
}

void submit_call(void* call) { event_loop::get().submit(static_cast<call_on_loop*>(call)); }

struct close_op : loop_op {
  close_op() noexcept : loop_op(start) {}
  static void start(loop_request* r, uv_loop_t*) noexcept {
    auto* op = static_cast<close_op*>(r);
    op->handle->data = op;
    uv_close(op->handle, [](uv_handle_t* h) { static_cast<close_op*>(h->data)->finish(0); });
  }
  uv_handle_t* handle = nullptr;
};

class uv_error_category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "libuv"; }
  std::string message(int code) const override {
    if (code == UV_EOF) return "unexpected end of stream";
    return uv_strerror(code);
  }
};

}  // namespace

void run_on_loop(void (*fn)(void*, uv_loop_t*) noexcept, void* arg) noexcept {
  waiter w;
  call_on_loop call;
  call.run = run_call;
  call.fn = fn;
  call.arg = arg;
  call.parked = &w;
  w.park_then(submit_call, &call);
}

void close_handle(uv_handle_t* h) noexcept {
  close_op op;
  op.handle = h;
  op.wait();
}

std::error_code uv_error_code(int status) noexcept {
  // libuv's codes on Unix are negated errno values, except its own
  // (UV_EOF, UV_EAI_*), which lie below -3000.
  if (status < 0 && status > -3000) return {-status, std::generic_category()};
  return {status, uv_category()};
}

void throw_net_error(const char* op, const std::string& address, int status) {
  std::string what = op;
  if (!address.empty()) what += " " + address;
  if (status == UV_ETIMEDOUT) {
    throw timeout_error(std::make_error_code(std::errc::timed_out), what);
  }
  throw net_error(uv_error_code(status), what);
}

}  // namespace spindle::detail

namespace spindle {

const std::error_category& uv_category() noexcept {
  static const detail::uv_error_category category;
  return category;
}

}  // namespace spindle
