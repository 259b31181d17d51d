// lib/context/switch.cpp: the context switch; the contract is in switch.hpp.
#include "context/switch.hpp"

#include <pthread.h>

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "context/overflow.hpp"
#include "context/sanitizers.hpp"

namespace spindle::detail {
namespace {

// initial-exec: one %fs-relative load instead of a __tls_get_addr call per
// access, which matters on every switch. The library must be loaded at
// program start or early enough for the static TLS reserve (as usual).
__attribute__((tls_model("initial-exec"))) thread_local worker* this_thread_worker = nullptr;

// no_deallocation: Boost calls deallocate() when a fiber's record is destroyed;
// the stack is ours and goes back to the pool in fiber_exited instead.
struct no_deallocation {
  boost::context::stack_context allocate() { std::abort(); }
  void deallocate(boost::context::stack_context&) noexcept {}
};

}  // namespace

__attribute__((noinline)) worker* current_worker() noexcept {
  asm volatile("" ::: "memory");
  return this_thread_worker;
}

void set_current_worker(worker* w) noexcept { this_thread_worker = w; }

void enter_worker_thread(worker& w) noexcept {
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* low = nullptr;
    std::size_t size = 0;
    pthread_attr_getstack(&attr, &low, &size);
    w.thread_stack_bottom = low;
    w.thread_stack_size = size;
    pthread_attr_destroy(&attr);
  }
#if SPINDLE_TSAN
  w.tsan_fiber = __tsan_get_current_fiber();
#endif
  set_current_worker(&w);
  install_overflow_handler();
}

// build_first_frame: builds f's initial context at the top of its stack (the
// first write to the stack), after installing its guard if that is pending.
// The fiber will start in fiber_main(f).
void build_first_frame(fiber& f) {
  namespace ctx = boost::context;
  if (f.stack.guard_pending) install_pending_guard(f.stack);
  ctx::stack_context whole;
  whole.size = f.stack.size;
  whole.sp = f.stack.top();
  fiber* self = &f;
  f.context =
      ctx::fiber(std::allocator_arg, ctx::preallocated(f.stack.top(), f.stack.size, whole),
                 no_deallocation{}, [self](ctx::fiber&& scheduler) -> ctx::fiber {
                   if (scheduler) {  // started by a scheduler, not directly by a fiber
                     after_jump(nullptr);
                     current_worker()->scheduler_context = std::move(scheduler);
                   }
                   fiber_main(*self);
                   worker& w = *current_worker();
                   w.after_switch = fiber_exited;
                   w.after_switch_arg = nullptr;
                   before_jump(nullptr, w.thread_stack_bottom, w.thread_stack_size, w.tsan_fiber);
                   return std::move(w.scheduler_context);
                 });
}

void prepare_fiber([[maybe_unused]] fiber& f) noexcept {
#if SPINDLE_TSAN
  f.tsan_fiber = __tsan_create_fiber(0);
#endif
}

void release_fiber_sanitizer_state([[maybe_unused]] fiber& f) noexcept {
#if SPINDLE_TSAN
  __tsan_destroy_fiber(f.tsan_fiber);
  f.tsan_fiber = nullptr;
#endif
}

}  // namespace spindle::detail
