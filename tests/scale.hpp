// tests/scale.hpp: how many fibers a test may keep alive at once.
//
// ThreadSanitizer gives every fiber its own shadow stack mapping, so with the
// kernel's default of 65,530 mappings a process under TSan cannot hold
// 100,000 fibers. Tests that exercise sheer numbers scale down there; every
// other build runs them at full size.
#pragma once

namespace spindle_test {

#if defined(__SANITIZE_THREAD__)
inline constexpr int fiber_scale_divisor = 10;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr int fiber_scale_divisor = 10;
#else
inline constexpr int fiber_scale_divisor = 1;
#endif
#else
inline constexpr int fiber_scale_divisor = 1;
#endif

// many_fibers: n, or n / 10 under ThreadSanitizer.
constexpr int many_fibers(int n) { return n / fiber_scale_divisor; }

}  // namespace spindle_test
