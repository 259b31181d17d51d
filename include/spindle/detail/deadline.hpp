// spindle/detail/deadline.hpp: turning the timeouts of timed operations
// (send_for, wait_until, select's timeout case...) into one steady deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <ratio>
#include <type_traits>
#include <utility>

namespace spindle::detail {

using time_point = std::chrono::steady_clock::time_point;

// no_deadline: the deadline of an operation that may block forever.
inline constexpr time_point no_deadline = time_point::max();

// fits_before: whether now + d (d positive, rounded up to the clock's
// nanoseconds) stays below `room` = no_deadline - now. Exact in integers for
// integral durations whose unit is a whole number of nanoseconds' units
// (every std::chrono alias): converting `room` down to d's unit only
// divides, and a d below it converts up to nanoseconds without overflow.
// Other durations compare as doubles.
template <class Rep, class Period>
bool fits_before(const std::chrono::duration<Rep, Period>& d,
                 std::chrono::steady_clock::duration room) noexcept {
  using std::chrono::duration;
  if constexpr (std::is_integral_v<Rep> && std::ratio_divide<std::nano, Period>::num == 1) {
    const auto room_in_units = std::chrono::floor<duration<std::intmax_t, Period>>(room);
    return std::cmp_less(d.count(), room_in_units.count());
  } else {
    return duration<double>(d).count() < duration<double>(room).count();
  }
}

// deadline_after: now + d on the steady clock, rounded up; saturates to
// no_deadline when the sum would not fit. A negative d means "now".
template <class Rep, class Period>
time_point deadline_after(const std::chrono::duration<Rep, Period>& d) noexcept {
  time_point now = std::chrono::steady_clock::now();
  if (d <= d.zero()) return now;
  if (!fits_before(d, no_deadline - now)) return no_deadline;
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
