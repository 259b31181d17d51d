// spindle/time.hpp: sleeping, timers and tickers, as in Go's time package.
//
//   spindle::sleep_for(10ms);                    // parks the fiber (or sleeps the thread)
//   spindle::timer t(50ms);                      // t.channel() receives once after 50 ms
//   if (t.stop()) { /* stopped before it fired */ }
//   spindle::timer later(1s, [] { flush(); });   // runs flush() on a new fiber after 1 s
//   spindle::ticker tick(100ms);                 // tick.channel() receives every 100 ms
//   auto deadline = spindle::after(2s);          // Go's time.After
//
// All times are on std::chrono::steady_clock. Timers are entries in a timer
// wheel per processor under one timerfd each, so a hundred thousand sleeping
// fibers are cheap. A timer fires no earlier than its deadline and, on an
// idle processor, at most options::timer_slack (200 us) plus the kernel's
// wake-up latency after it; timers due close together fire in one wake-up.
// On a busy processor it fires at the next poll of its loop (at the latest
// every 61 fibers run there).
#pragma once

#include <chrono>
#include <functional>

#include "spindle/chan.hpp"
#include "spindle/detail/deadline.hpp"

namespace spindle {

using steady_time = std::chrono::steady_clock::time_point;

namespace detail {
void sleep_until_steady(steady_time deadline);
void sleep_until_ahead(steady_time deadline);
class timer_state;
}  // namespace detail

// sleep_until: returns once `deadline` has passed. Parks the calling fiber;
// blocks a plain thread.
template <class Clock, class Duration>
void sleep_until(const std::chrono::time_point<Clock, Duration>& deadline) {
  detail::sleep_until_steady(detail::deadline_at(deadline));
}

// sleep_for: returns once `d` has elapsed. Parks the calling fiber; blocks a
// plain thread. A zero or negative d returns at once.
template <class Rep, class Period>
void sleep_for(const std::chrono::duration<Rep, Period>& d) {
  if (d <= d.zero()) return;
  detail::sleep_until_ahead(detail::deadline_after(d));
}

// timer: fires once, Go's time.Timer. Either it sends the time it fired on
// channel() (capacity 1, so firing never blocks), or, built with a function,
// runs that function on a new fiber (Go's time.AfterFunc; channel() is nil).
// Destroying a timer stops it. Move-only.
class timer {
 public:
  // timer: fires after d.
  explicit timer(std::chrono::nanoseconds d);
  // timer: runs f on a new fiber after d.
  timer(std::chrono::nanoseconds d, std::function<void()> f);
  timer(timer&& other) noexcept;
  timer& operator=(timer&& other) noexcept;
  ~timer();

  // channel: receives the firing time once (nil for a function timer). A
  // handle: copies refer to the same channel.
  chan<steady_time> channel() const noexcept;
  // stop: prevents the timer from firing. Returns true if it was pending,
  // false if it had already fired or been stopped. Does not block, except
  // for waiting out a fire in progress on its loop.
  bool stop() noexcept;
  // reset: makes the timer fire after d from now. Returns true if it was
  // still pending. A value already sent on channel() stays there (as in Go
  // before 1.23): drain it with try_recv() first if that matters.
  bool reset(std::chrono::nanoseconds d);

 private:
  detail::timer_state* state_;
};

// ticker: sends the time on channel() every period, Go's time.Ticker. If the
// receiver falls behind, ticks are dropped (the channel holds one), never
// queued up. Destroying a ticker stops it. Move-only.
class ticker {
 public:
  // ticker: first tick after one period. Throws usage_error if period <= 0.
  explicit ticker(std::chrono::nanoseconds period);
  ticker(ticker&& other) noexcept;
  ticker& operator=(ticker&& other) noexcept;
  ~ticker();

  chan<steady_time> channel() const noexcept;
  // stop: no more ticks are sent. Does not block (see timer::stop).
  void stop() noexcept;
  // reset: ticks every `period` from now on. Throws usage_error if period <= 0.
  void reset(std::chrono::nanoseconds period);

 private:
  detail::timer_state* state_;
};

// after: a channel that receives the time once, after d (Go's time.After).
// The timer cannot be stopped; use timer when it may need to be.
chan<steady_time> after(std::chrono::nanoseconds d);

}  // namespace spindle
