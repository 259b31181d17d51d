// spindle/go.hpp: spawning fibers, joining them, yielding.
//
//   auto h = spindle::go([](int x) { return x * 2; }, 21);
//   int v = h.join();                       // 42; rethrows if the fiber threw
//   spindle::go([] { serve(); });           // dropped handle: fire and forget
//   spindle::go({.stack_size = 1 << 20, .name = "parser"}, parse, input);
//
// go() works from a fiber and from a plain thread; the runtime starts on first
// use. Each fiber runs on its own stack (options::stack_size by default) on one
// of the runtime's processors and may move between worker threads whenever it
// blocks or yields: keep no reference to a thread_local across a blocking call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>
#include <utility>

#include "spindle/detail/task.hpp"

namespace spindle {

using fiber_id = std::uint64_t;

// spawn_options: per-fiber settings for go(). Zero or empty means the default.
struct spawn_options {
  std::size_t stack_size = 0;  // usable stack bytes; 0 = options::stack_size
  std::string_view name{};     // shown in diagnostics; copied
};

// handle<R>: the owner's end of a fiber returning R. Move-only.
// Destroying or detach()ing an unjoined handle lets the fiber run on; an
// exception it then throws goes to the unhandled-exception handler.
template <class R>
class handle {
 public:
  handle() noexcept = default;
  explicit handle(detail::task<R>* t) noexcept : task_(t), state_(attached) {}
  handle(handle&& other) noexcept
      : task_(std::exchange(other.task_, nullptr)), state_(std::exchange(other.state_, empty)) {}
  handle& operator=(handle&& other) noexcept {
    if (this != &other) {
      detach_if_attached();
      task_ = std::exchange(other.task_, nullptr);
      state_ = std::exchange(other.state_, empty);
    }
    return *this;
  }
  ~handle() { detach_if_attached(); }

  // join: waits for the fiber to finish and returns its result, or rethrows
  // the exception that escaped it. Parks the calling fiber; blocks a plain
  // thread. Throws usage_error when called twice, after detach(), or on a
  // default-constructed or moved-from handle.
  R join() {
    if (state_ != attached) detail::raise_join_misuse(state_);
    state_ = joined;
    detail::task<R>* t = std::exchange(task_, nullptr);
    struct releaser {
      detail::task<R>* t;
      ~releaser() { t->release(); }
    } release_on_exit{t};
    t->wait_done();
    if (t->error()) std::rethrow_exception(t->error());
    return t->take_result();
  }

  // detach: lets the fiber run on without an owner. Does not block. Throws
  // usage_error on a joined, detached or empty handle.
  void detach() {
    if (state_ != attached) detail::raise_join_misuse(state_ + detach_offset);
    detach_if_attached();
    state_ = detached;
  }

  // joinable: true while join() may be called.
  bool joinable() const noexcept { return state_ == attached; }
  // done: true once the fiber has finished (join() will not block). Does not block.
  bool done() const noexcept { return state_ == attached && task_->is_done(); }
  // id: the fiber's id; 0 when the handle is not attached.
  fiber_id id() const noexcept { return task_ ? task_->id() : 0; }

  // The handle's states, named in usage_error messages.
  enum state_kind : int { empty = 0, attached = 1, joined = 2, detached = 3, detach_offset = 8 };

 private:
  void detach_if_attached() noexcept {
    if (state_ == attached) {
      task_->abandon();
      task_->release();
      task_ = nullptr;
    }
  }

  detail::task<R>* task_ = nullptr;
  int state_ = empty;
};

// go: starts f(args...) on a new fiber and returns its handle. Arguments are
// decay-copied (use std::ref to pass a reference). Does not block. Throws
// resource_error when no stack memory can be had.
template <class F, class... Args>
handle<detail::task_result_t<F, Args...>> go(const spawn_options& opts, F&& f, Args&&... args) {
  using result = detail::task_result_t<F, Args...>;
  using bound = detail::bound_task<result, std::decay_t<F>, std::decay_t<Args>...>;
  auto* t = new bound(std::forward<F>(f), std::forward<Args>(args)...);
  detail::spawn(t, opts);
  return handle<result>(t);
}

template <class F, class... Args>
requires(!std::is_convertible_v<F, const spawn_options&>)
    handle<detail::task_result_t<F, Args...>> go(F&& f, Args&&... args) {
  return go(spawn_options{}, std::forward<F>(f), std::forward<Args>(args)...);
}

// yield: lets other runnable fibers run, then continues. From a plain thread
// it yields the thread (std::this_thread::yield).
void yield();

namespace detail {
void blocking_begin() noexcept;
void blocking_end() noexcept;
}  // namespace detail

// blocking: runs f(), a call known to block the thread (a blocking system
// call, a library without async support), and returns its result. If other
// fibers wait for this fiber's processor, the processor is handed to another
// thread at once instead of after options::blocked_threshold (Go's
// entersyscallblock, Tokio's block_in_place). From a plain thread it just
// calls f().
template <class F>
decltype(auto) blocking(F&& f) {
  struct section {
    section() noexcept { detail::blocking_begin(); }
    ~section() { detail::blocking_end(); }
  } guard;
  return std::forward<F>(f)();
}

namespace this_fiber {
// id: the calling fiber's id (ids start at 1); 0 on a plain thread.
fiber_id id() noexcept;
// name: the calling fiber's name; empty for unnamed fibers and plain threads.
std::string_view name() noexcept;
// in_fiber: whether the caller runs on a spindle fiber.
bool in_fiber() noexcept;
// processor: index of the processor running the caller; -1 on a plain thread
// (or on a thread whose processor was handed off while it was blocked).
int processor() noexcept;
// check_preempt: a cooperative preemption point for long computations:
// yields if the monitor found this fiber hogging its processor (or if the
// processor was handed off), otherwise returns at once (one load). Returns
// whether it yielded. On a plain thread it does nothing.
bool check_preempt();
}  // namespace this_fiber

}  // namespace spindle
