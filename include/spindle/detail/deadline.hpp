// spindle/detail/deadline.hpp: turning the timeouts of timed operations
// (send_for, wait_until, select's timeout case...) into one steady deadline.
#pragma once

#include <chrono>
#include <type_traits>

namespace spindle::detail {

using time_point = std::chrono::steady_clock::time_point;

// no_deadline: the deadline of an operation that may block forever.
inline constexpr time_point no_deadline = time_point::max();

// deadline_after: now + d on the steady clock, rounded up; saturates to
// no_deadline when the sum would not fit. A negative d means "now".
template <class Rep, class Period>
time_point deadline_after(const std::chrono::duration<Rep, Period>& d) noexcept {
  using std::chrono::duration;
  time_point now = std::chrono::steady_clock::now();
  if (d <= d.zero()) return now;
  if (duration<double>(d).count() >= duration<double>(no_deadline - now).count()) {
    return no_deadline;
  }
  return now + std::chrono::ceil<std::chrono::steady_clock::duration>(d);
}

// deadline_at: the steady-clock deadline for time point t of any clock.
template <class Clock, class Duration>
time_point deadline_at(const std::chrono::time_point<Clock, Duration>& t) noexcept {
  if constexpr (std::is_same_v<Clock, std::chrono::steady_clock> &&
                std::is_same_v<Duration, std::chrono::steady_clock::duration>) {
    return t;
  } else {
    return deadline_after(t - Clock::now());
  }
}

}  // namespace spindle::detail
