// lib/chan/park_until_fallback.cpp: a stand-in for waiter::park_until until
// the timers land (issue 4 needs the declared API to link). Weak: the real
// definition in lib/sched/park.cpp replaces it, and this file then goes.
// Plain threads get the real behaviour (a futex wait with a timeout); fibers
// park without a deadline.
#include <time.h>

#include "os/futex.hpp"
#include "sched/park.hpp"

namespace spindle::detail {

[[gnu::weak]] bool waiter::park_until(spinlock_ref lock,
                                      std::chrono::steady_clock::time_point deadline) noexcept {
  if (fiber_ != nullptr) {
    park(lock);
    return true;
  }
  lock.unlock();
  for (;;) {
    if (woken_.load(std::memory_order_acquire) != 0) return true;
    auto left = deadline - std::chrono::steady_clock::now();
    if (left <= left.zero()) {
      if (try_claim()) return false;
      while (woken_.load(std::memory_order_acquire) == 0) futex_wait(woken_, 0);
      return true;
    }
    auto seconds = std::chrono::duration_cast<std::chrono::seconds>(left);
    timespec relative{static_cast<time_t>(seconds.count()),
                      static_cast<long>((left - seconds).count())};
    futex_wait(woken_, 0, &relative);
  }
}

}  // namespace spindle::detail
