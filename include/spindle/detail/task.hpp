// spindle/detail/task.hpp: the state a fiber shares with its handle.
//
// go() wraps the callable and its arguments in a bound_task, allocated once,
// and hands it to the runtime (detail::spawn). The task is reference counted:
// one reference for the fiber until it finishes, one for the handle until it
// is joined, detached or destroyed. The runtime side (lib/sched/task.cpp)
// implements waiting, completion and the unobserved-exception rule.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace spindle {
struct spawn_options;
}

namespace spindle::detail {

// task_base: the callable's outcome and the joiner, shared by fiber and handle.
class task_base {
 public:
  task_base() = default;
  task_base(const task_base&) = delete;
  task_base& operator=(const task_base&) = delete;

  // run: executes the callable on the fiber and records the outcome. Never throws.
  virtual void run() noexcept = 0;

  void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // wait_done: blocks until the fiber has finished: parks the calling fiber,
  // or blocks the calling plain thread.
  void wait_done();
  // is_done: whether the fiber has finished. Does not block.
  bool is_done() const noexcept;
  // complete: called by the runtime once run() returned; wakes the joiner, or
  // reports an exception nobody will observe, and drops the fiber's
  // reference (the task may be gone when it returns). Does not block.
  void complete() noexcept;
  // abandon: the handle lets go without joining; an exception already stored
  // (or stored later) goes to the unhandled-exception handler.
  void abandon() noexcept;

  std::uint64_t id() const noexcept { return id_; }
  const std::string& name() const noexcept { return name_; }
  std::exception_ptr error() const noexcept { return error_; }

 protected:
  virtual ~task_base() = default;
  std::exception_ptr error_;

 private:
  friend class task_access;
  std::atomic<int> refs_{1};
  std::atomic<std::uint32_t> lock_{0};  // guards state_ and joiner_
  std::uint32_t state_ = 0;             // task_state bits, see lib/sched/task.cpp
  void* joiner_ = nullptr;              // the parked joiner, a detail::waiter
  std::uint64_t id_ = 0;
  std::string name_;
};

// task<R>: a task whose callable returns R (stored decayed).
template <class R>
class task : public task_base {
 public:
  R take_result() { return std::move(*value_); }

 protected:
  std::optional<R> value_;
};

template <>
class task<void> : public task_base {
 public:
  void take_result() noexcept {}
};

template <class F, class... Args>
using task_result_t = std::decay_t<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>>;

// bound_task: a callable with its arguments, decay-copied as std::thread does.
template <class R, class F, class... Args>
class bound_task final : public task<R> {
 public:
  template <class G, class... A>
  explicit bound_task(G&& f, A&&... args)
      : function_(std::forward<G>(f)), arguments_(std::forward<A>(args)...) {}

  void run() noexcept override {
    try {
      if constexpr (std::is_void_v<R>) {
        std::apply(std::move(function_), std::move(arguments_));
      } else {
        this->value_.emplace(std::apply(std::move(function_), std::move(arguments_)));
      }
    } catch (...) {
      this->error_ = std::current_exception();
    }
  }

 private:
  F function_;
  std::tuple<Args...> arguments_;
};

// spawn: starts a fiber running t. Takes over the caller's reference to t and
// adds the handle's. Throws resource_error when no stack can be had.
void spawn(task_base* t, const spawn_options& opts);

// raise_join_misuse: throws the usage_error for joining a handle in `state`.
[[noreturn]] void raise_join_misuse(int state);

}  // namespace spindle::detail
