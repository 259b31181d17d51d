// spindle/signal.hpp: receiving Unix signals on a channel (Go's signal.Notify).
//
//   spindle::signal_notifier stop({SIGINT, SIGTERM});
//   spindle::go([&] { serve(); });
//   int sig = *stop.channel().recv();   // parks until SIGINT or SIGTERM arrives
//   stop.stop();                         // the signals get their default action back
//
// While a notifier is active, its signals no longer take their default action
// (terminating the process, for SIGINT and SIGTERM): each delivery sends the
// signal number on channel() instead. The channel has room for 16 numbers;
// deliveries that find it full are dropped (as in Go), so a slow receiver
// sees at least one. Several notifiers may watch the same signal; each gets
// its own copy. The handler is libuv's (uv_signal_t on its loop), so
// no user code runs in signal context.
#pragma once

#include <initializer_list>

#include "spindle/chan.hpp"

namespace spindle {

namespace detail {
class signal_watch;
}

// signal_notifier: delivers the listed signals on a channel until stopped or
// destroyed. Move-only.
class signal_notifier {
 public:
  // signal_notifier: starts watching `signals` (e.g. {SIGINT, SIGTERM});
  // returns once the handlers are installed, so a signal raised right after
  // is received. Parks the fiber (blocks a thread) for one loop round trip.
  // Throws std::system_error for a signal that cannot be caught (SIGKILL...).
  explicit signal_notifier(std::initializer_list<int> signals);
  signal_notifier(signal_notifier&& other) noexcept;
  signal_notifier& operator=(signal_notifier&& other) noexcept;
  ~signal_notifier();

  // channel: receives the number of each delivered signal. A handle: copies
  // refer to the same channel. Closed by stop().
  chan<int> channel() const noexcept { return channel_; }
  // stop: stops watching and closes channel(); the signals take their
  // default action again unless another notifier watches them. Idempotent.
  // Parks the fiber (blocks a thread) for one loop round trip.
  void stop() noexcept;

 private:
  chan<int> channel_;
  detail::signal_watch* watch_ = nullptr;
};

}  // namespace spindle
