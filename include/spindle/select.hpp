// spindle/select.hpp: waiting on several channel operations at once (Go's select).
//
//   std::size_t fired = spindle::select(
//       spindle::recv(jobs, [&](std::optional<job> j) { ... }),   // empty: jobs is closed
//       spindle::send(results, r, [&] { ++sent; }),
//       spindle::recv(quit),                                       // no handler: value dropped
//       spindle::timeout(10ms, [&] { ... }));
//
// select performs exactly one of its cases and runs that case's handler,
// then returns the case's position among the arguments (0-based). When
// several cases are ready, one is chosen uniformly at random. When none is:
//   - with a default_case(...), that case runs at once: select never blocks;
//   - otherwise select blocks (parks a fiber, blocks a plain thread) until a
//     case can proceed, or until its timeout(...)/deadline(...) case fires.
// A case on a nil channel, or one switched off with .when(false), never
// fires (Go's nil channel). A receive case on a closed channel fires with an
// empty optional. A send case on a closed channel throws usage_error("send
// on closed channel"), as Go panics. A select with no enabled case and
// neither default nor timeout would block forever and throws usage_error.
//
// Cases are temporaries of the select expression: a send case holds its
// value (dropped if another case fires), a receive case holds room for one
// value. Handlers are optional; a receive handler takes std::optional<T> or
// nothing. At most one timeout/deadline case and one default case.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>

#include "spindle/chan.hpp"
#include "spindle/detail/chan_core.hpp"
#include "spindle/detail/deadline.hpp"

namespace spindle {

namespace detail {

enum class case_kind { receive, send, timeout, fallback };

// no_handler: what a case without a handler runs.
struct no_handler {
  void operator()() const noexcept {}
};

// select_case: what every case has: its handler and whether it is enabled.
template <case_kind Kind, class Handler>
class select_case {
 public:
  static constexpr case_kind kind = Kind;
  explicit select_case(Handler handler) : handler_(std::move(handler)) {}
  bool enabled() const noexcept { return enabled_; }

 protected:
  Handler handler_;
  bool enabled_ = true;
};

}  // namespace detail

// recv_case: a receive case; made by spindle::recv(channel, handler).
template <class T, class Handler>
class recv_case : public detail::select_case<detail::case_kind::receive, Handler> {
 public:
  recv_case(const chan<T>& channel, Handler handler)
      : detail::select_case<detail::case_kind::receive, Handler>(std::move(handler)),
        channel_(channel.core_or_nil()) {}
  // when: enables the case only if `enabled`.
  recv_case&& when(bool enabled) && noexcept {
    this->enabled_ = enabled;
    return std::move(*this);
  }

  void prepare(detail::chan_op& op) noexcept {
    op.channel = channel_;
    op.slot = slot_.address();
    op.enabled = this->enabled_;
  }
  void fire(const detail::chan_op& op) {
    std::optional<T> value;
    if (op.status == detail::op_status::done) value = slot_.take();
    if constexpr (std::is_invocable_v<Handler&, std::optional<T>&&>) {
      this->handler_(std::move(value));
    } else {
      this->handler_();
    }
  }

 private:
  detail::chan_core* channel_;
  detail::raw_slot<T> slot_;
};

// send_case: a send case; made by spindle::send(channel, value, handler).
template <class T, class Handler>
class send_case : public detail::select_case<detail::case_kind::send, Handler> {
 public:
  template <class U>
  send_case(const chan<T>& channel, U&& value, Handler handler)
      : detail::select_case<detail::case_kind::send, Handler>(std::move(handler)),
        channel_(channel.core_or_nil()),
        value_(std::forward<U>(value)) {}
  // when: enables the case only if `enabled`.
  send_case&& when(bool enabled) && noexcept {
    this->enabled_ = enabled;
    return std::move(*this);
  }

  void prepare(detail::chan_op& op) noexcept {
    op.channel = channel_;
    op.slot = &value_;
    op.is_send = true;
    op.enabled = this->enabled_;
  }
  void fire(const detail::chan_op&) { this->handler_(); }

 private:
  detail::chan_core* channel_;
  T value_;
};

// timeout_case: fires when no other case did by its deadline; made by
// spindle::timeout(duration, handler) or spindle::deadline(time_point, handler).
template <class Handler>
class timeout_case : public detail::select_case<detail::case_kind::timeout, Handler> {
 public:
  timeout_case(detail::time_point deadline, Handler handler)
      : detail::select_case<detail::case_kind::timeout, Handler>(std::move(handler)),
        deadline_(deadline) {}
  // when: enables the case only if `enabled` (disabled: no time limit).
  timeout_case&& when(bool enabled) && noexcept {
    this->enabled_ = enabled;
    return std::move(*this);
  }
  detail::time_point deadline() const noexcept { return deadline_; }
  void fire() { this->handler_(); }

 private:
  detail::time_point deadline_;
};

// default_case_t: fires at once when no other case is ready; made by
// spindle::default_case(handler).
template <class Handler>
class default_case_t : public detail::select_case<detail::case_kind::fallback, Handler> {
 public:
  using detail::select_case<detail::case_kind::fallback, Handler>::select_case;
  // when: enables the case only if `enabled` (disabled: select may block).
  default_case_t&& when(bool enabled) && noexcept {
    this->enabled_ = enabled;
    return std::move(*this);
  }
  void fire() { this->handler_(); }
};

// recv: a select case receiving from `channel`; `handler` gets the value
// (std::optional<T>, empty if the channel is closed) or takes no argument.
template <class T, class Handler = detail::no_handler>
recv_case<T, Handler> recv(const chan<T>& channel, Handler handler = {}) {
  return recv_case<T, Handler>(channel, std::move(handler));
}

// send: a select case sending `value` on `channel`, then running `handler`.
template <class T, class U, class Handler = detail::no_handler>
send_case<T, Handler> send(const chan<T>& channel, U&& value, Handler handler = {}) {
  return send_case<T, Handler>(channel, std::forward<U>(value), std::move(handler));
}

// timeout: a select case firing once `after` has passed (measured from the
// case's creation) with no other case ready.
template <class Rep, class Period, class Handler = detail::no_handler>
timeout_case<Handler> timeout(const std::chrono::duration<Rep, Period>& after,
                              Handler handler = {}) {
  return timeout_case<Handler>(detail::deadline_after(after), std::move(handler));
}

// deadline: a select case firing at time point `at` with no other case ready.
template <class Clock, class Duration, class Handler = detail::no_handler>
timeout_case<Handler> deadline(const std::chrono::time_point<Clock, Duration>& at,
                               Handler handler = {}) {
  return timeout_case<Handler>(detail::deadline_at(at), std::move(handler));
}

// default_case: a select case firing at once when no other case is ready.
template <class Handler = detail::no_handler>
default_case_t<Handler> default_case(Handler handler = {}) {
  return default_case_t<Handler>(std::move(handler));
}

namespace detail {

template <class Case>
inline constexpr bool is_channel_case =
    Case::kind == case_kind::receive || Case::kind == case_kind::send;

template <case_kind Kind, class... Cases>
inline constexpr std::size_t count_cases = ((std::remove_cvref_t<Cases>::kind == Kind) + ... + 0);

}  // namespace detail

// select: performs one of `cases` and runs its handler; returns its position
// among the arguments. Blocks as described at the top of this file.
template <class... Cases>
std::size_t select(Cases&&... cases) {
  constexpr std::size_t channel_cases =
      (detail::is_channel_case<std::remove_cvref_t<Cases>> + ... + 0);
  static_assert(detail::count_cases<detail::case_kind::timeout, Cases...> <= 1,
                "select: at most one timeout or deadline case");
  static_assert(detail::count_cases<detail::case_kind::fallback, Cases...> <= 1,
                "select: at most one default case");
  static_assert(channel_cases < 32768, "select: too many cases");

  std::array<detail::chan_op, channel_cases> ops{};
  std::array<std::uint16_t, 2 * channel_cases> scratch{};
  bool has_default = false;
  detail::time_point deadline = detail::no_deadline;
  std::size_t next = 0;
  auto prepare = [&](auto& c) {
    using case_type = std::remove_cvref_t<decltype(c)>;
    if constexpr (detail::is_channel_case<case_type>) {
      c.prepare(ops[next++]);
    } else if constexpr (case_type::kind == detail::case_kind::timeout) {
      if (c.enabled()) deadline = c.deadline();
    } else {
      has_default = c.enabled();
    }
  };
  (prepare(cases), ...);

  std::size_t fired =
      detail::select_core(ops.data(), channel_cases, scratch.data(), has_default, deadline);

  std::size_t position = 0, chosen = 0;
  next = 0;
  auto dispatch = [&](auto& c) {
    using case_type = std::remove_cvref_t<decltype(c)>;
    if constexpr (detail::is_channel_case<case_type>) {
      if (next++ == fired) {
        chosen = position;
        c.fire(ops[fired]);
      }
    } else if constexpr (case_type::kind == detail::case_kind::timeout) {
      if (fired == detail::select_timeout) {
        chosen = position;
        c.fire();
      }
    } else if (fired == detail::select_default) {
      chosen = position;
      c.fire();
    }
    ++position;
  };
  (dispatch(cases), ...);
  return chosen;
}

}  // namespace spindle
