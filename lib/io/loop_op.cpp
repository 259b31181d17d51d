// lib/io/loop_op.cpp: loop_op and the error helpers; the protocol is
// described in loop_op.hpp.
#include "io/loop_op.hpp"

#include "spindle/net.hpp"

namespace spindle::detail {
namespace {

void submit_op(void* op) {
  auto* self = static_cast<loop_op*>(op);
  self->target().submit(self);
}

void finish_now(loop_op* op) noexcept { op->finish(UV_ETIMEDOUT); }

}  // namespace

loop_op::loop_op(void (*start)(loop_request*, uv_loop_t*) noexcept,
                 std::chrono::steady_clock::time_point deadline, event_loop& on) noexcept
    : target_(&on) {
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
  if (armed_) event_loop::cancel_timer(&timer_);
  return status_;
}

void loop_op::arm_deadline() noexcept {
  if (timer_.deadline_ns == INT64_MAX || finished_) return;
  armed_ = true;
  target_->add_timer(&timer_);
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

class uv_error_category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "libuv"; }
  std::string message(int code) const override {
    if (code == UV_EOF) return "unexpected end of stream";
    return uv_strerror(code);
  }
};

}  // namespace

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
