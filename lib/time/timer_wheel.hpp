// lib/time/timer_wheel.hpp: one event loop's pending timers, by wake slot.
//
// A loop wakes for a timer at its deadline rounded up to the slot width
// (options::timer_slack): every timer of a slot fires at the slot's end, in
// deadline order and, for equal deadlines, in the order they were set. The
// wheel is a ring of slot_count slots covering the slot_count slots from the
// cursor on; each slot is an array of (deadline, sequence, entry) records.
// Later timers wait in an overflow heap (timer_heap) and move into the ring
// as the cursor comes within reach of them.
//
// Why a wheel: entries live on parked fibers' stacks, all over memory. A
// heap of 100,000 timers walks nine levels per push or pop and writes the
// index of every entry it moves, a cache miss apiece; here a push appends a
// record and writes the entry's position (the entry is hot: its fiber just
// filled it in), a cancel moves one record, and firing a slot sorts its
// contiguous records and touches each entry once, to fire it.
//
// Not synchronised: each event loop guards its wheel with its timer lock.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "time/timer_heap.hpp"

namespace spindle::detail {

class timer_wheel {
 public:
  static constexpr std::uint32_t slot_count = 1024;  // a power of two

  // timer_wheel: slots slot_ns wide; `now_ns` places the cursor.
  timer_wheel(std::int64_t slot_ns, std::int64_t now_ns);

  // push: queues e for e->deadline_ns; returns when its slot ends (the time
  // it will fire).
  std::int64_t push(timer_entry* e);
  // remove: unqueues e, which must be queued.
  void remove(timer_entry* e) noexcept;
  // take_due: appends to `out`, in firing order, every entry whose slot
  // ended at or before now_ns, unqueued.
  void take_due(std::int64_t now_ns, std::vector<timer_entry*>& out);
  // next_wake: when the earliest pending slot ends; INT64_MAX if none.
  std::int64_t next_wake() const noexcept;
  std::size_t size() const noexcept { return ring_size_ + overflow_.size(); }

 private:
  struct record {
    std::int64_t deadline_ns;
    std::uint64_t sequence;
    timer_entry* entry;
  };
  static constexpr std::uint32_t mask = slot_count - 1;
  static constexpr std::uint32_t words = slot_count / 64;

  // slot_of: the index of the slot whose end is the first at or after t.
  std::int64_t slot_of(std::int64_t t) const noexcept {
    return t <= 0 ? 0 : (t + slot_ns_ - 1) / slot_ns_;
  }
  void place(std::int64_t slot, timer_entry* e);
  void take_slot(std::uint32_t ring_index, std::vector<record>& due);
  void refill_from_overflow(std::int64_t due_slot, std::vector<record>& due);
  // next_occupied: the ring index of the first occupied slot at or after the
  // cursor, in ring order; slot_count if none.
  std::uint32_t next_occupied() const noexcept;

  const std::int64_t slot_ns_;
  std::int64_t cursor_;  // slot index: every slot before it has fired
  std::array<std::vector<record>, slot_count> ring_;
  std::array<std::uint64_t, words> occupied_{};  // bit i: ring_[i] is not empty
  std::size_t ring_size_ = 0;
  timer_heap overflow_;  // entries whose slot is at or after cursor_ + slot_count
  std::uint64_t next_sequence_ = 0;
  std::vector<record> due_;  // take_due's scratch space
};

}  // namespace spindle::detail
