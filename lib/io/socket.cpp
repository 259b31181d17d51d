// lib/io/socket.cpp: socket_base, the closing protocol of socket.hpp.
#include "io/socket.hpp"

#include <mutex>
#include <utility>

namespace spindle::detail {

// teardown_op: a close() waiting for the handle's close callback. Several
// may wait at once (close() from two fibers, or close() after a deadline
// started the close on its loop); the callback finishes them all.
struct socket_base::teardown_op : loop_op {
  explicit teardown_op(socket_base* s) noexcept
      : loop_op(start, time_point::max(), s->loop()), socket(s) {}

  static void start(loop_request* r, uv_loop_t*) noexcept {
    auto* op = static_cast<teardown_op*>(r);
    socket_base* s = op->socket;
    if (s->handle_closed_) {
      op->finish(0);
      return;
    }
    op->next_waiter = s->teardown_waiters_;
    s->teardown_waiters_ = op;
    s->begin_teardown();
  }

  socket_base* socket;
  teardown_op* next_waiter = nullptr;
};

bool socket_base::acquire_fd() noexcept {
  fd_users_.fetch_add(1, std::memory_order_seq_cst);
  if (closed_.load(std::memory_order_seq_cst)) {
    release_fd();
    return false;
  }
  return true;
}

bool socket_base::mark_closed() noexcept {
  {
    std::lock_guard lock(lock_);
    if (closed_.load(std::memory_order_relaxed)) return false;
    closed_.store(true, std::memory_order_seq_cst);
  }
  wake_blocked();
  return true;
}

void socket_base::close() noexcept {
  mark_closed();
  teardown_op op(this);
  op.wait();
}

void socket_base::close_on_loop() noexcept {
  mark_closed();
  begin_teardown();
}

void socket_base::begin_teardown() noexcept {
  if (closing_) return;
  closing_ = true;
  for (int spins = 0; fd_users_.load(std::memory_order_seq_cst) != 0; ++spins) {
    if (spins < 64) {
      cpu_relax();
    } else {
      sched_yield();
    }
  }
  uv_close(handle_, on_close);
}

void socket_base::on_close(uv_handle_t* h) {
  auto* self = static_cast<socket_base*>(h->data);
  self->handle_closed_ = true;
  self->on_handle_closed();
  teardown_op* waiters = std::exchange(self->teardown_waiters_, nullptr);
  while (waiters != nullptr) {
    teardown_op* op = waiters;
    waiters = op->next_waiter;
    op->finish(0);
  }
}

}  // namespace spindle::detail
