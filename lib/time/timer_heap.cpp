// lib/time/timer_heap.cpp: the binary heap of timer_heap.hpp.
#include "time/timer_heap.hpp"

namespace spindle::detail {

void timer_heap::push(timer_entry* e) {
  e->sequence = next_sequence_++;
  entries_.push_back(e);
  e->heap_index = entries_.size() - 1;
  sift_up(e->heap_index);
}

timer_entry* timer_heap::pop() noexcept {
  timer_entry* first = top();
  if (first != nullptr) remove(first);
  return first;
}

void timer_heap::remove(timer_entry* e) noexcept {
  const std::size_t i = e->heap_index;
  timer_entry* last = entries_.back();
  entries_.pop_back();
  e->heap_index = timer_entry::not_queued;
  if (last == e) return;
  place(i, last);
  sift_up(i);
  sift_down(last->heap_index);
}

void timer_heap::sift_up(std::size_t i) noexcept {
  timer_entry* e = entries_[i];
  while (i > 0) {
    const std::size_t parent = (i - 1) / 2;
    if (!earlier(e, entries_[parent])) break;
    place(i, entries_[parent]);
    i = parent;
  }
  place(i, e);
}

void timer_heap::sift_down(std::size_t i) noexcept {
  timer_entry* e = entries_[i];
  const std::size_t n = entries_.size();
  for (;;) {
    std::size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && earlier(entries_[child + 1], entries_[child])) ++child;
    if (!earlier(entries_[child], e)) break;
    place(i, entries_[child]);
    i = child;
  }
  place(i, e);
}

}  // namespace spindle::detail
