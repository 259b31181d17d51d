// lib/context/switch.hpp: the only place where stacks are switched.
//
// Contract:
//   - A fiber runs from the moment it is switched to, by run_fiber(w, f) on
//     w's scheduler context or directly by a fiber's switch_out, until its
//     next switch_out(action, arg) or its exit. A switch goes scheduler ->
//     fiber, fiber -> scheduler, or fiber -> fiber: switch_out goes straight
//     to the fiber the scheduler would run next when that pick needs none of
//     the scheduler's loop (take_direct_successor), and the after-switch step
//     then runs on top of that fiber's stack (settle_direct_switch) before it
//     continues (Boost.Fiber's shape: one stack switch instead of two).
//   - What is saved is what Boost.Context saves: the callee-saved registers,
//     the stack pointer and the return address, on the suspended stack.
//   - A fiber may resume on a different worker thread than the one it left.
//     Code around a switch must re-read anything thread-local after it:
//     current_worker() is the (non-inlinable) way to do so.
//   - A new fiber has no context yet (f.context is empty): run_fiber builds
//     its initial frame at the top of its stack when it first runs it, so
//     the stack's first page is touched by the worker, not by the spawner.
//   - When run_fiber returns, or when settle_direct_switch runs, the fiber
//     that switched out has fully done so: its context is saved in its
//     `context` (or it has exited, and `context` is empty), and the worker
//     then performs w.after_switch. Nothing may make the fiber runnable
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
// first write to the stack), after installing its guard if that is pending.
// The fiber will start in fiber_main(f).
void build_first_frame(fiber& f);

// run_fiber and switch_out are inline, and so is the jump (Boost's resume):
// after a switch the return-address predictor is wrong for every frame the
// thread unwinds, so each frame less between the caller and the jump is a
// mispredicted return less per switch.

// run_fiber: the scheduler side. Runs f on w until a fiber switches back to
// the scheduler, or exits: f, or a fiber that f (or its successors) switched
// to directly. Returns that fiber (w.current), its context saved. A fiber
// never run before starts in fiber_main(f).
inline fiber& run_fiber(worker& w, fiber& f) noexcept {
  if (!f.context) build_first_frame(f);  // never run: empty only before the first run
  before_jump(&w.asan_fake_stack, f.stack.bottom, f.stack.size, f.tsan_fiber);
  boost::context::fiber back = std::move(f.context).resume();
  after_jump(w.asan_fake_stack);
  fiber& out = *w.current;
  out.context = std::move(back);
  return out;
}

// take_direct_successor: the fiber to switch to straight from the running
// one, in the runtime (the processor's busy bit set) and counted as running;
// nullptr when the scheduler must choose (scheduler.cpp, direct_successor).
fiber* take_direct_successor(worker& w) noexcept;
// settle_direct_switch: on top of `next`'s stack, once `out` has switched to
// it: performs out's after-switch step, makes `next` the running fiber and
// leaves the runtime.
void settle_direct_switch(worker& w, fiber& out, fiber& next) noexcept;

// switch_out: the fiber side (Go's mcall). Records what the worker must do
// once the running fiber has switched out (worker::after_switch), saves the
// fiber and switches to its successor, or to the current worker's scheduler;
// returns when some worker runs the fiber again. Blocking primitives call it
// straight from their own frame (waiter::wait_until), not through
// scheduler::park. A fiber resumed by the scheduler receives the
// scheduler's context (kept for the next switch back); one resumed directly
// receives none, and finished arriving on top (the sanitizers' half included).
inline void switch_out(after_switch_fn action, void* arg) noexcept {
  worker* w = current_worker();
  fiber& f = *w->current;
  w->after_switch = action;
  w->after_switch_arg = arg;
  if (!f.stack.guarded) check_unguarded_overflow(f, false);
  boost::context::fiber back;
  if (fiber* next = take_direct_successor(*w)) {
    before_jump(&f.asan_fake_stack, next->stack.bottom, next->stack.size, next->tsan_fiber);
    back = std::move(next->context).resume_with([out = &f, next](boost::context::fiber&& from) {
      after_jump(next->asan_fake_stack);
      out->context = std::move(from);
      settle_direct_switch(*current_worker(), *out, *next);
      return boost::context::fiber{};
    });
  } else {
    before_jump(&f.asan_fake_stack, w->thread_stack_bottom, w->thread_stack_size, w->tsan_fiber);
    back = std::move(w->scheduler_context).resume();
  }
  if (back) {  // resumed by a scheduler: w may be another worker now
    after_jump(f.asan_fake_stack);
    current_worker()->scheduler_context = std::move(back);
  }
}

// fiber_main: the body of every fiber; defined by the scheduler.
void fiber_main(fiber& f) noexcept;
// fiber_exited: the after_switch action for a fiber whose body returned.
void fiber_exited(worker& w, fiber* f, void* arg);

// release_fiber_sanitizer_state: frees what the sanitizers kept for f.
void release_fiber_sanitizer_state(fiber& f) noexcept;

}  // namespace spindle::detail
