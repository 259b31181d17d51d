// lib/sched/api.cpp: the public entry points of go.hpp and runtime.hpp.
#include <thread>

#include "context/switch.hpp"
#include "sched/options.hpp"
#include "sched/scheduler.hpp"
#include "sched/task_access.hpp"

namespace spindle {

namespace detail {
void spawn(task_base* t, const spawn_options& opts) {
  scheduler::get().spawn(t, opts, __builtin_return_address(0));
}

void blocking_begin() noexcept {
  if (scheduler* s = scheduler::started()) s->blocking_begin();
}

void blocking_end() noexcept {
  if (scheduler* s = scheduler::started()) s->blocking_end();
}
}  // namespace detail

void yield() {
  if (detail::scheduler::running_fiber() != nullptr) {
    detail::scheduler::get().yield_fiber();
  } else {
    std::this_thread::yield();
  }
}

namespace this_fiber {

fiber_id id() noexcept {
  const detail::fiber* f = detail::scheduler::running_fiber();
  return f ? f->id : 0;
}

std::string_view name() noexcept {
  const detail::fiber* f = detail::scheduler::running_fiber();
  return f ? std::string_view(f->task->name()) : std::string_view();
}

bool in_fiber() noexcept { return detail::scheduler::running_fiber() != nullptr; }

int processor() noexcept {
  const detail::worker* w = detail::current_worker();
  return w && w->current && w->proc ? w->proc->index : -1;
}

bool check_preempt() {
  return detail::scheduler::running_fiber() != nullptr && detail::scheduler::get().check_preempt();
}

}  // namespace this_fiber

options current_options() { return detail::scheduler::get().config(); }

stats runtime_stats() {
  detail::scheduler* s = detail::scheduler::started();
  return s ? s->snapshot() : stats{};
}

}  // namespace spindle
