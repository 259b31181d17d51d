// lib/time/timer_heap.hpp: pending timers, earliest first.
//
// A 4-ary min-heap of intrusive entries, ordered by deadline and then by
// insertion order (two timers due at the same instant fire in the order they
// were set). Not synchronised: each event loop guards its own heap with its timer lock.
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

  std::int64_t deadline_ns = 0;  // steady clock, nanoseconds
  // fire: runs on the owner of the entry's loop, outside the timer lock,
  // once the deadline passed.
  void (*fire)(timer_entry* self) noexcept = nullptr;
  // home: the loop whose heap holds (or last held) the entry; written by
  // add_timer, before the entry is published in the heap.
  event_loop* home = nullptr;

  // Guarded by the home loop's timer lock.
  std::uint64_t sequence = 0;
  std::size_t heap_index = not_queued;
  bool cancelled = false;  // stop()ped: a periodic timer must not re-arm
  // frees_itself: fire() may destroy the entry (nobody ever cancels it), so
  // the loop must not touch it once fire() was called.
  bool frees_itself = false;
  timer_entry* next_expired = nullptr;

  // firing: 1 while the loop's owner runs fire(); cancel waits for 0 before the
  // entry's owner may destroy it.
  std::atomic<std::uint32_t> firing{0};
};

class timer_heap {
 public:
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
  std::uint64_t next_sequence_ = 0;
};

}  // namespace spindle::detail
