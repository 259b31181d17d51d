// lib/sched/run_queue.cpp: the out-of-line parts of the run queues.
#include "sched/run_queue.hpp"

#include <algorithm>

#include "sched/core.hpp"

namespace spindle::detail {

void fiber_list::push_back(fiber* f) noexcept {
  f->next = nullptr;
  if (tail != nullptr) {
    tail->next = f;
  } else {
    head = f;
  }
  tail = f;
  ++size;
}

void fiber_list::append(fiber_list& other) noexcept {
  if (other.head == nullptr) return;
  if (tail != nullptr) {
    tail->next = other.head;
  } else {
    head = other.head;
  }
  tail = other.tail;
  size += other.size;
  other = fiber_list{};
}

fiber* fiber_list::pop_front() noexcept {
  fiber* f = head;
  if (f == nullptr) return nullptr;
  head = f->next;
  if (head == nullptr) tail = nullptr;
  f->next = nullptr;
  --size;
  return f;
}

std::uint32_t run_queue::grab(fiber_list& out, std::uint32_t max) noexcept {
  fiber* taken[capacity];
  for (;;) {
    std::uint32_t head = head_.load(std::memory_order_acquire);
    const std::uint32_t tail = tail_.load(std::memory_order_acquire);
    std::uint32_t n = tail - head;
    if (n > capacity) continue;  // head and tail read at different moments
    n = std::min(n - n / 2, max);
    if (n == 0) return 0;
    for (std::uint32_t i = 0; i < n; ++i) {
      taken[i] = slots_[(head + i) % capacity].load(std::memory_order_relaxed);
    }
    // The fibers become ours only if no other consumer moved head meanwhile;
    // until then they must not be touched (the owner may be running one).
    if (head_.compare_exchange_strong(head, head + n, std::memory_order_acq_rel,
                                      std::memory_order_relaxed)) {
      for (std::uint32_t i = 0; i < n; ++i) out.push_back(taken[i]);
      return n;
    }
  }
}

}  // namespace spindle::detail
