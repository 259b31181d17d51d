// lib/sched/run_queue.cpp: the out-of-line parts of the run queues.
#include "sched/run_queue.hpp"

#include <algorithm>

#include "sched/core.hpp"

namespace spindle::detail {

std::uint32_t run_queue::grab(fiber_batch& out, std::uint32_t max) noexcept {
  for (;;) {
    std::uint32_t head = head_.load(std::memory_order_acquire);
    const std::uint32_t tail = tail_.load(std::memory_order_acquire);
    std::uint32_t n = tail - head;
    if (n > capacity) continue;  // head and tail read at different moments
    n = std::min({n - n / 2, max, fiber_batch::capacity - out.size});
    if (n == 0) return 0;
    for (std::uint32_t i = 0; i < n; ++i) {
      out.items[out.size + i] = slots_[(head + i) % capacity].load(std::memory_order_relaxed);
    }
    // The fibers become ours only if no other consumer moved head meanwhile.
    if (head_.compare_exchange_strong(head, head + n, std::memory_order_acq_rel,
                                      std::memory_order_relaxed)) {
      out.size += n;
      return n;
    }
  }
}

void fiber_queue::grow() {
  std::vector<fiber*> bigger(slots_.size() * 2);
  for (std::uint32_t i = 0; i < count_; ++i) bigger[i] = slots_[(head_ + i) & (slots_.size() - 1)];
  slots_ = std::move(bigger);
  head_ = 0;
}

}  // namespace spindle::detail
