// lib/os/futex.hpp: the Linux futex, the one primitive every sleep is built on.
//
// A futex word is a std::atomic<uint32_t>. futex_wait sleeps while the word
// still holds `expected` (the kernel checks it atomically with going to
// sleep, so a wake between the caller's check and the sleep is not lost);
// it may return early (EINTR, spurious wakes): callers loop on their own
// condition. futex_wake wakes at most `count` sleepers on the word.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace spindle::detail {

inline void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                       const timespec* relative_timeout = nullptr) noexcept {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected,
          relative_timeout, nullptr, 0);
}

inline void futex_wake(std::atomic<std::uint32_t>& word, int count) noexcept {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, count, nullptr,
          nullptr, 0);
}

}  // namespace spindle::detail
