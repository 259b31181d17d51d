// lib/sched/task.cpp: joining a fiber, and exceptions nobody will observe.
//
// task_base::state_ bits, all guarded by task_base::lock_:
//   finished   the fiber's callable has returned or thrown;
//   abandoned  the handle was detached or destroyed without join;
//   reported   the exception went to the unhandled-exception handler.
// An exception is "unobserved" once the task is both finished and abandoned;
// whichever of complete() and abandon() comes second reports it, outside the lock.
#include <cstdio>
#include <exception>
#include <mutex>
#include <string>

#include "sched/park.hpp"
#include "sched/task_access.hpp"
#include "spindle/error.hpp"
#include "spindle/go.hpp"
#include "spindle/runtime.hpp"

namespace spindle {
namespace {

enum task_state : std::uint32_t { finished = 1, abandoned = 2, reported = 4 };

void default_unhandled_exception(const fiber_info& fiber, std::exception_ptr error) {
  std::string what = "unknown exception";
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  std::fprintf(stderr, "spindle: unhandled exception in fiber %llu (%.*s): %s\n",
               static_cast<unsigned long long>(fiber.id), static_cast<int>(fiber.name.size()),
               fiber.name.data(), what.c_str());
  std::fflush(stderr);
  std::terminate();
}

std::atomic<unhandled_exception_handler> handler{default_unhandled_exception};

void report_unobserved(const detail::task_base& t) noexcept {
  handler.load(std::memory_order_acquire)(fiber_info{t.id(), t.name()}, t.error());
}

}  // namespace

unhandled_exception_handler set_unhandled_exception_handler(unhandled_exception_handler h) {
  return handler.exchange(h ? h : default_unhandled_exception, std::memory_order_acq_rel);
}

namespace detail {

void task_access::start(task_base& t, std::uint64_t id, std::string_view name) {
  t.id_ = id;
  if (!name.empty()) t.name_.assign(name);
  t.retain();  // the handle's reference; the caller's becomes the fiber's
}

void task_base::wait_done() {
  spinlock_ref lock(lock_);
  lock.lock();
  if (state_ & finished) {
    lock.unlock();
    return;
  }
  waiter self;
  joiner_ = &self;
  self.park(lock);
}

bool task_base::is_done() const noexcept {
  spinlock_ref lock(const_cast<std::atomic<std::uint32_t>&>(lock_));
  std::lock_guard guard(lock);
  return (state_ & finished) != 0;
}

// complete: also drops the fiber's reference, before waking the joiner: then
// the task (and the exception it may hold) is freed by the handle's owner,
// on the thread that joined, never concurrently with its use of the error.
void task_base::complete() noexcept {
  waiter* joiner;
  bool report;
  {
    spinlock_ref lock(lock_);
    std::lock_guard guard(lock);
    state_ |= finished;
    joiner = static_cast<waiter*>(std::exchange(joiner_, nullptr));
    if (joiner != nullptr && !joiner->try_claim()) joiner = nullptr;
    report = (state_ & abandoned) && error_ && !(state_ & reported);
    if (report) state_ |= reported;
  }
  if (report) report_unobserved(*this);
  release();  // the joiner, if any, still holds the handle's reference
  if (joiner != nullptr) joiner->wake();
}

void task_base::abandon() noexcept {
  bool report;
  {
    spinlock_ref lock(lock_);
    std::lock_guard guard(lock);
    state_ |= abandoned;
    report = (state_ & finished) && error_ && !(state_ & reported);
    if (report) state_ |= reported;
  }
  if (report) report_unobserved(*this);
}

void raise_join_misuse(int state) {
  using h = handle<void>;
  switch (state) {
    case h::empty:
      throw usage_error("spindle: join on an empty handle (default-constructed or moved from)");
    case h::joined:
      throw usage_error("spindle: join called twice on one handle");
    case h::detached:
      throw usage_error("spindle: join on a detached fiber");
    case h::empty + h::detach_offset:
      throw usage_error("spindle: detach on an empty handle (default-constructed or moved from)");
    case h::joined + h::detach_offset:
      throw usage_error("spindle: detach after join");
    case h::detached + h::detach_offset:
      throw usage_error("spindle: detach called twice on one handle");
    default:
      throw usage_error("spindle: misuse of a fiber handle");
  }
}

}  // namespace detail
}  // namespace spindle
