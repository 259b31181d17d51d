// lib/context/switch.hpp: the only place where stacks are switched.
//
// Contract:
//   - A fiber runs only between run_fiber(w, f) (on w's scheduler context)
//     and its next switch_out(action, arg) or its exit. Every switch goes
//     fiber -> scheduler or scheduler -> fiber; never fiber -> fiber.
//   - What is saved is what Boost.Context saves: the callee-saved registers,
//     the stack pointer and the return address, on the suspended stack.
//   - A fiber may resume on a different worker thread than the one it left.
//     Code around a switch must re-read anything thread-local after it:
//     current_worker() is the (non-inlinable) way to do so.
//   - A new fiber has no context yet (f.context is empty): run_fiber builds
//     its initial frame at the top of its stack when it first runs it, so
//     the stack's first page is touched by the worker, not by the spawner.
//   - When run_fiber returns, the fiber has fully switched out: its context is
//     saved in f.context (or it has exited, and f.context is empty), and the
//     worker then performs w.after_switch. Nothing may make the fiber runnable
//     elsewhere before that point; this is what lets a parked fiber's waiter
//     settle who readies it (lib/sched/park.hpp) in the after_switch step.
//   - Sanitizers: under ASan every switch is bracketed by
//     __sanitizer_start_switch_fiber / __sanitizer_finish_switch_fiber (a
//     fiber's exit passes a null fake stack so ASan frees it); under TSan each
//     fiber has a TSan fiber created at spawn, switched to right before the
//     jump, and destroyed after its exit.
#pragma once

#include <utility>

#include "context/overflow.hpp"
#include "context/sanitizers.hpp"
#include "sched/core.hpp"

namespace spindle::detail {

// current_worker: the worker of the calling thread, or nullptr on a plain
// thread. Never inlined, so it is re-read after a switch.
worker* current_worker() noexcept;
// set_current_worker: binds the calling thread to w (at worker start).
void set_current_worker(worker* w) noexcept;

// enter_worker_thread: records the thread's stack for the sanitizers.
void enter_worker_thread(worker& w) noexcept;

// prepare_fiber: registers a new fiber with the sanitizers (under TSan, its
// TSan fiber), at spawn. Its first frame is built at spawn on a reused
// stack, when it first runs on a fresh one (scheduler::spawn says why).
void prepare_fiber(fiber& f) noexcept;

// build_first_frame: builds f's initial context at the top of its stack (the
// first write to the stack). The fiber will start in fiber_main(f).
void build_first_frame(fiber& f);

// run_fiber and switch_out are inline, and so is the jump (Boost's resume):
// after a switch the return-address predictor is wrong for every frame the
// thread unwinds, so each frame less between the caller and the jump is a
// mispredicted return less per switch.

// run_fiber: the scheduler side. Runs f on w until f switches out or exits;
// a fiber never run before starts in fiber_main(f).
inline void run_fiber(worker& w, fiber& f) noexcept {
  if (!f.context) build_first_frame(f);  // never run: empty only before the first run
  before_jump(&w.asan_fake_stack, f.stack.bottom, f.stack.size, f.tsan_fiber);
  f.context = std::move(f.context).resume();
  after_jump(w.asan_fake_stack);
}

// switch_out: the fiber side (Go's mcall). Records what the worker must do
// once the running fiber has switched out (worker::after_switch), saves the
// fiber and returns to the current worker's scheduler; returns when some
// worker runs the fiber again. Blocking primitives call it straight from
// their own frame (waiter::wait_until), not through scheduler::park.
inline void switch_out(after_switch_fn action, void* arg) noexcept {
  worker* w = current_worker();
  fiber& f = *w->current;
  w->after_switch = action;
  w->after_switch_arg = arg;
  if (!f.stack.guarded) check_unguarded_overflow(f, false);
  before_jump(&f.asan_fake_stack, w->thread_stack_bottom, w->thread_stack_size, w->tsan_fiber);
  boost::context::fiber scheduler = std::move(w->scheduler_context).resume();
  after_jump(f.asan_fake_stack);
  current_worker()->scheduler_context = std::move(scheduler);  // w may be another worker now
}

// fiber_main: the body of every fiber; defined by the scheduler.
void fiber_main(fiber& f) noexcept;
// fiber_exited: the after_switch action for a fiber whose body returned.
void fiber_exited(worker& w, fiber* f, void* arg);

// release_fiber_sanitizer_state: frees what the sanitizers kept for f.
void release_fiber_sanitizer_state(fiber& f) noexcept;

}  // namespace spindle::detail
