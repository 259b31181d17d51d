// lib/time/timer_heap.cpp: the 4-ary heap of timer_heap.hpp.
//
// Each slot holds the entry's deadline and sequence next to the pointer, so
// comparisons never touch the entries themselves (they live on parked
// fibers' stacks, all over memory); only the heap_index of an entry that
// moves is written. Four children per node halve the depth of a binary heap:
// with 100,000 timers a push or pop walks 9 levels instead of 17.
#include "time/timer_heap.hpp"

namespace spindle::detail {

void timer_heap::push(timer_entry* e) {
  slots_.push_back({e->deadline_ns, e->sequence, e});
  sift_up(slots_.size() - 1);
}

timer_entry* timer_heap::pop() noexcept {
  timer_entry* first = top();
  if (first != nullptr) remove(first);
  return first;
}

void timer_heap::remove(timer_entry* e) noexcept {
  const std::size_t i = e->heap_index;
  const slot last = slots_.back();
  slots_.pop_back();
  e->heap_index = timer_entry::not_queued;
  if (last.entry == e) return;
  place(i, last);
  sift_up(i);
  sift_down(last.entry->heap_index);
}

void timer_heap::sift_up(std::size_t i) noexcept {
  const slot moving = slots_[i];
  while (i > 0) {
    const std::size_t parent = (i - 1) / arity;
    if (!earlier(moving, slots_[parent])) break;
    place(i, slots_[parent]);
    i = parent;
  }
  place(i, moving);
}

void timer_heap::sift_down(std::size_t i) noexcept {
  const slot moving = slots_[i];
  const std::size_t n = slots_.size();
  for (;;) {
    const std::size_t first_child = arity * i + 1;
    if (first_child >= n) break;
    std::size_t best = first_child;
    const std::size_t end = first_child + arity < n ? first_child + arity : n;
    for (std::size_t c = first_child + 1; c < end; ++c) {
      if (earlier(slots_[c], slots_[best])) best = c;
    }
    if (!earlier(slots_[best], moving)) break;
    place(i, slots_[best]);
    i = best;
  }
  place(i, moving);
}

}  // namespace spindle::detail
