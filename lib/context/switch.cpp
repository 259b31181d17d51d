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

// Sanitizer brackets around one jump. `to_bottom/to_size` is the stack we go to;
// `fake_stack` is where ASan keeps the leaving stack's fake frames (nullptr when
// the leaving stack is finished for good).
inline void before_jump([[maybe_unused]] void** fake_stack, [[maybe_unused]] const void* to_bottom,
                        [[maybe_unused]] std::size_t to_size,
                        [[maybe_unused]] void* to_tsan_fiber) noexcept {
#if SPINDLE_ASAN
  __sanitizer_start_switch_fiber(fake_stack, to_bottom, to_size);
#endif
#if SPINDLE_TSAN
  __tsan_switch_to_fiber(to_tsan_fiber, 0);
#endif
}

inline void after_jump([[maybe_unused]] void* fake_stack) noexcept {
#if SPINDLE_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
}

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

namespace {

// build_first_frame: builds f's initial context at the top of its stack (the
// first write to the stack). The fiber will start in fiber_main(f).
__attribute__((noinline)) void build_first_frame(fiber& f) {
  namespace ctx = boost::context;
  ctx::stack_context whole;
  whole.size = f.stack.size;
  whole.sp = f.stack.top();
  fiber* self = &f;
  f.context =
      ctx::fiber(std::allocator_arg, ctx::preallocated(f.stack.top(), f.stack.size, whole),
                 no_deallocation{}, [self](ctx::fiber&& scheduler) -> ctx::fiber {
                   after_jump(nullptr);
                   current_worker()->scheduler_context = std::move(scheduler);
                   fiber_main(*self);
                   worker& w = *current_worker();
                   w.after_switch = fiber_exited;
                   w.after_switch_arg = nullptr;
                   before_jump(nullptr, w.thread_stack_bottom, w.thread_stack_size, w.tsan_fiber);
                   return std::move(w.scheduler_context);
                 });
}

}  // namespace

void prepare_fiber([[maybe_unused]] fiber& f) noexcept {
#if SPINDLE_TSAN
  f.tsan_fiber = __tsan_create_fiber(0);
#endif
}

void run_fiber(worker& w, fiber& f) noexcept {
  if (!f.context) build_first_frame(f);  // never run: empty only before the first run
  before_jump(&w.asan_fake_stack, f.stack.bottom, f.stack.size, f.tsan_fiber);
  f.context = std::move(f.context).resume();
  after_jump(w.asan_fake_stack);
}

void switch_out(after_switch_fn action, void* arg) noexcept {
  worker* w = current_worker();
  fiber& f = *w->current;
  w->after_switch = action;
  w->after_switch_arg = arg;
  check_unguarded_overflow(f, false);
  before_jump(&f.asan_fake_stack, w->thread_stack_bottom, w->thread_stack_size, w->tsan_fiber);
  boost::context::fiber scheduler = std::move(w->scheduler_context).resume();
  after_jump(f.asan_fake_stack);
  current_worker()->scheduler_context = std::move(scheduler);
}

void release_fiber_sanitizer_state([[maybe_unused]] fiber& f) noexcept {
#if SPINDLE_TSAN
  __tsan_destroy_fiber(f.tsan_fiber);
  f.tsan_fiber = nullptr;
#endif
}

}  // namespace spindle::detail
