// lib/context/sanitizers.hpp: what AddressSanitizer and ThreadSanitizer must be
// told about fiber stacks. Everything here compiles to nothing without them.
//
// ASan tracks one stack per thread; switching stacks behind its back makes it
// report false errors (and lose its fake stacks). Each switch is therefore
// bracketed: __sanitizer_start_switch_fiber names the stack we go to, and
// __sanitizer_finish_switch_fiber, on arrival, tells where we came from.
// TSan keeps a logical "fiber" per stack: __tsan_create_fiber for each fiber,
// __tsan_switch_to_fiber right before each switch. The calls sit in
// lib/context/switch.hpp and switch.cpp only.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define SPINDLE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPINDLE_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define SPINDLE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SPINDLE_TSAN 1
#endif
#endif

#if SPINDLE_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if SPINDLE_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace spindle::detail {

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

// unpoison_stack: clears ASan's marks left on a stack by frames that never
// returned (a finished fiber's entry frames), before the stack is reused.
inline void unpoison_stack([[maybe_unused]] void* bottom,
                           [[maybe_unused]] std::size_t size) noexcept {
#if SPINDLE_ASAN
  ASAN_UNPOISON_MEMORY_REGION(bottom, size);
#endif
}

}  // namespace spindle::detail
