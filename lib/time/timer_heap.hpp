// lib/time/timer_heap.hpp: pending timers, earliest first.
//
// A 4-ary min-heap of intrusive entries, ordered by deadline and then by
// sequence (two timers due at the same instant fire in the order they were
// set). It holds the timers too far ahead for a timer_wheel's ring. Not
// synchronised: its wheel's owner guards it.
// Each entry knows its index, so removal is O(log n) without a search.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace spindle::detail {

class event_loop;

struct timer_entry {
  static constexpr std::size_t not_queued = static_cast<std::size_t>(-1);
  static constexpr std::uint32_t not_in_ring = static_cast<std::uint32_t>(-1);

  std::int64_t deadline_ns = 0;  // steady clock, nanoseconds
  // fire: runs on the owner of the entry's loop, outside the timer lock,
  // once the deadline passed.
  void (*fire)(timer_entry* self) noexcept = nullptr;
  // home: the loop whose timers hold (or last held) the entry; written by
  // add_timer, before the entry is published there.
  event_loop* home = nullptr;

  // Guarded by the home loop's timer lock.
  std::uint64_t sequence = 0;  // set by timer_wheel::push: orders equal deadlines
  // heap_index: the entry's position in its wheel slot or in the overflow
  // heap; not_queued when it is in neither. ring_index: its wheel slot, or
  // not_in_ring while it waits in the overflow heap.
  std::size_t heap_index = not_queued;
  std::uint32_t ring_index = not_in_ring;
  bool cancelled = false;  // stop()ped: a periodic timer must not re-arm
  // frees_itself: nobody ever cancels the entry, and fire() may destroy it,
  // or wake the one who will (a sleep), so the loop must not touch it once
  // fire() was called, and nobody waits on `firing`.
  bool frees_itself = false;

  // firing: 1 while the loop's owner runs fire(); cancel waits for 0 before the
  // entry's owner may destroy it.
  std::atomic<std::uint32_t> firing{0};
};

class timer_heap {
 public:
  // push: queues e, ordered by e->deadline_ns and e->sequence.
  void push(timer_entry* e);
  timer_entry* top() const noexcept { return slots_.empty() ? nullptr : slots_.front().entry; }
  timer_entry* pop() noexcept;
  void remove(timer_entry* e) noexcept;
  std::size_t size() const noexcept { return slots_.size(); }

 private:
  static constexpr std::size_t arity = 4;

  struct slot {
    std::int64_t deadline_ns;
    std::uint64_t sequence;
    timer_entry* entry;
  };

  static bool earlier(const slot& a, const slot& b) noexcept {
    return a.deadline_ns != b.deadline_ns ? a.deadline_ns < b.deadline_ns : a.sequence < b.sequence;
  }
  void place(std::size_t i, const slot& s) noexcept {
    slots_[i] = s;
    s.entry->heap_index = i;
  }
  void sift_up(std::size_t i) noexcept;
  void sift_down(std::size_t i) noexcept;

  std::vector<slot> slots_;
};

}  // namespace spindle::detail
