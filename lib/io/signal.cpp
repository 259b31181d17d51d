// lib/io/signal.cpp: signal_notifier on libuv signal handles.
//
// A signal_watch owns one uv_signal_t per signal, all on its loop.
// libuv's process-wide handler writes the signal to a pipe the loop reads,
// and the uv_signal callback (on the loop, not signal context) try_sends the
// number on the channel: never blocking the loop, dropping when it is full.
// Stopping closes the handles on its loop and waits for their close
// callbacks, so no callback can run after stop() returned.
#include "spindle/signal.hpp"

#include <system_error>
#include <utility>
#include <vector>

#include "io/loop_op.hpp"

namespace spindle::detail {

class signal_watch {
 public:
  signal_watch(std::initializer_list<int> signals, chan<int> channel)
      : signals_(signals),
        channel_(std::move(channel)),
        handles_(signals_.size()),
        loop_(&event_loop::current()) {}

  // start_op: installs the handles; finishes with the first failure.
  struct start_op : loop_op {
    explicit start_op(signal_watch* w) noexcept
        : loop_op(start, time_point::max(), *w->loop_), watch(w) {}
    static void start(loop_request* r, uv_loop_t* loop) noexcept {
      auto* op = static_cast<start_op*>(r);
      op->finish(op->watch->start_all(loop));
    }
    signal_watch* watch;
  };

  // stop_op: closes every started handle and finishes after the last callback.
  struct stop_op : loop_op {
    explicit stop_op(signal_watch* w) noexcept
        : loop_op(start, time_point::max(), *w->loop_), watch(w) {}
    static void start(loop_request* r, uv_loop_t*) noexcept {
      auto* op = static_cast<stop_op*>(r);
      op->watch->stopping_ = op;
      op->watch->close_all();
    }
    signal_watch* watch;
  };

  int start_all(uv_loop_t* loop) noexcept {
    for (std::size_t i = 0; i < signals_.size(); ++i) {
      int rc = uv_signal_init(loop, &handles_[i]);
      if (rc != 0) return rc;
      ++started_;
      handles_[i].data = this;
      uv_unref(reinterpret_cast<uv_handle_t*>(&handles_[i]));
      rc = uv_signal_start(&handles_[i], on_signal, signals_[i]);
      if (rc != 0) return rc;
    }
    return 0;
  }

  void close_all() noexcept {
    open_ = started_;
    if (open_ == 0) {
      stopping_->finish(0);
      return;
    }
    for (std::size_t i = 0; i < started_; ++i) {
      uv_close(reinterpret_cast<uv_handle_t*>(&handles_[i]), on_closed);
    }
  }

 private:
  static void on_signal(uv_signal_t* handle, int signum) {
    static_cast<signal_watch*>(handle->data)->channel_.try_send(signum);
  }
  static void on_closed(uv_handle_t* handle) {
    auto* self = static_cast<signal_watch*>(handle->data);
    if (--self->open_ == 0) self->stopping_->finish(0);
  }

  std::vector<int> signals_;
  chan<int> channel_;
  std::vector<uv_signal_t> handles_;  // the loop only
  event_loop* loop_;                  // the loop the handles live on
  std::size_t started_ = 0;           // the loop only
  std::size_t open_ = 0;              // the loop only
  stop_op* stopping_ = nullptr;       // the loop only
};

}  // namespace spindle::detail

namespace spindle {

signal_notifier::signal_notifier(std::initializer_list<int> signals) : channel_(16) {
  auto* watch = new detail::signal_watch(signals, channel_);
  detail::signal_watch::start_op op(watch);
  const int status = op.wait();
  watch_ = watch;
  if (status != 0) {
    stop();
    throw std::system_error(detail::uv_error_code(status), "signal_notifier");
  }
}

signal_notifier::signal_notifier(signal_notifier&& other) noexcept
    : channel_(std::move(other.channel_)), watch_(std::exchange(other.watch_, nullptr)) {}

signal_notifier& signal_notifier::operator=(signal_notifier&& other) noexcept {
  signal_notifier old(std::move(other));  // stops what this watched when it goes
  std::swap(channel_, old.channel_);
  std::swap(watch_, old.watch_);
  return *this;
}

signal_notifier::~signal_notifier() { stop(); }

void signal_notifier::stop() noexcept {
  detail::signal_watch* watch = std::exchange(watch_, nullptr);
  if (watch == nullptr) return;
  detail::signal_watch::stop_op op(watch);
  op.wait();
  delete watch;
  channel_.close();
}

}  // namespace spindle
