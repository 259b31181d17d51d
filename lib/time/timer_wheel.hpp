// lib/time/timer_wheel.hpp: one event loop's pending timers, by wake slot.
//
// Timers fire no earlier than their deadline, in deadline order and, for
// equal deadlines, in the order they were set. The wheel is a ring of
// slot_count slots, each slot_ns wide (options::timer_slack), covering the
// slot_count slots from the cursor on; each slot is an array of (deadline,
// sequence, entry) records. Later timers wait in an overflow heap
// (timer_heap) and move into the ring as the cursor comes within reach.
//
// When to wake (wake_time), Linux's hrtimer slack: a timer may fire up to
// the slack after its deadline, so the loop wakes at the latest deadline no
// more than one slack after the earliest, and fires everything due then.
// Timers set close together (fibers that woke together and sleep again)
// fire in one wake-up, however they fall across slot boundaries; rounding
// every deadline up to its slot's end instead split such a group whenever it
// straddled a boundary, and never let two groups merge.
//
// Each slot also keeps the earliest and latest deadline among its records,
// so earliest(), wake_time() and a poll that finds the slot under way not yet
// due look at those two numbers instead of every record: a loop asks after
// every wake-up and every periodic poll, and a slot may hold thousands of
// records. A removal that takes away a slot's earliest or latest record only
// marks the bounds stale; the next question recomputes them.
//
// Why a wheel: entries live on parked fibers' stacks, all over memory. A
// heap of 100,000 timers walks nine levels per push or pop and writes the
// index of every entry it moves, a cache miss apiece; here a push appends a
// record and writes the entry's position (the entry is hot: its fiber just
// filled it in), a cancel moves one record, and firing a slot sorts its
// contiguous records and touches each entry once, to fire it.
//
// Buffers. A slot that empties gives its record buffer to a stack of
// spares, and a slot that starts filling takes the one freed last. Sleepers
// that wake together sleep again into a slot a few ahead of the one that
// fired: they now append to the buffer that firing just read, in cache,
// where each slot keeping its own would hand them one last written a whole
// turn of the ring (slot_count slots) ago.
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

  // push: queues e for e->deadline_ns.
  void push(timer_entry* e);
  // remove: unqueues e, which must be queued.
  void remove(timer_entry* e) noexcept;
  // take_due: appends to `out`, in firing order, every entry whose deadline
  // is at or before now_ns, unqueued.
  void take_due(std::int64_t now_ns, std::vector<timer_entry*>& out);
  // earliest: the earliest pending deadline; INT64_MAX if none.
  std::int64_t earliest() const noexcept;
  // wake_time: the latest pending deadline at most slack_ns after the
  // earliest one (see above); INT64_MAX if none.
  std::int64_t wake_time(std::int64_t slack_ns) const noexcept;
  std::size_t size() const noexcept { return ring_size_ + overflow_.size(); }

 private:
  struct record {
    std::int64_t deadline_ns;
    std::uint64_t sequence;
    timer_entry* entry;
  };
  // slot_bounds: the earliest and latest deadline in a slot (empty: max, min);
  // stale after a removal took one of them away.
  struct slot_bounds {
    std::int64_t earliest = INT64_MAX;
    std::int64_t latest = INT64_MIN;
    bool stale = false;
  };
  static constexpr std::uint32_t mask = slot_count - 1;
  static constexpr std::uint32_t words = slot_count / 64;

  // slot_of: the index of the slot whose end is the first at or after t.
  std::int64_t slot_of(std::int64_t t) const noexcept {
    return t <= 0 ? 0 : (t + slot_ns_ - 1) / slot_ns_;
  }
  void place(std::int64_t slot, timer_entry* e);
  void take_slot(std::uint32_t ring_index, std::vector<record>& due);
  void take_due_in_slot(std::uint32_t ring_index, std::int64_t now_ns, std::vector<record>& due);
  void release_buffer(std::vector<record>& records);
  bool occupied(std::uint32_t ring_index) const noexcept {
    return (occupied_[ring_index / 64] >> (ring_index % 64) & 1) != 0;
  }
  // bounds: slot i's bounds, recomputed first if stale.
  const slot_bounds& bounds(std::uint32_t ring_index) const noexcept;
  void clear_bounds(std::uint32_t ring_index) noexcept { bounds_[ring_index] = slot_bounds{}; }
  void refill_from_overflow(std::int64_t due_slot, std::vector<record>& due);
  // next_occupied: the ring index of the first occupied slot at or after the
  // cursor, in ring order; slot_count if none.
  std::uint32_t next_occupied() const noexcept;

  const std::int64_t slot_ns_;
  std::int64_t cursor_;  // slot index: every slot before it has fired
  std::array<std::vector<record>, slot_count> ring_;
  mutable std::array<slot_bounds, slot_count> bounds_{};  // recomputed lazily by bounds()
  std::array<std::uint64_t, words> occupied_{};           // bit i: ring_[i] is not empty
  std::size_t ring_size_ = 0;
  timer_heap overflow_;  // entries whose slot is at or after cursor_ + slot_count
  std::uint64_t next_sequence_ = 0;
  std::vector<record> due_;                 // take_due's scratch space
  std::vector<std::vector<record>> spare_;  // emptied slots' buffers, last freed on top
};

}  // namespace spindle::detail
