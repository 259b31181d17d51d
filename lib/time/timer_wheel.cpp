// lib/time/timer_wheel.cpp: the wheel of timer_wheel.hpp.
#include "time/timer_wheel.hpp"

#include <algorithm>
#include <bit>

namespace spindle::detail {
namespace {

bool earlier(std::int64_t a_deadline, std::uint64_t a_sequence, std::int64_t b_deadline,
             std::uint64_t b_sequence) noexcept {
  return a_deadline != b_deadline ? a_deadline < b_deadline : a_sequence < b_sequence;
}

}  // namespace

timer_wheel::timer_wheel(std::int64_t slot_ns, std::int64_t now_ns)
    : slot_ns_(slot_ns), cursor_(now_ns / slot_ns) {}

std::int64_t timer_wheel::push(timer_entry* e) {
  e->sequence = next_sequence_++;
  const std::int64_t slot = std::max(slot_of(e->deadline_ns), cursor_);
  if (slot - cursor_ < static_cast<std::int64_t>(slot_count)) {
    place(slot, e);
  } else {
    e->ring_index = timer_entry::not_in_ring;
    overflow_.push(e);
  }
  return slot * slot_ns_;
}

void timer_wheel::place(std::int64_t slot, timer_entry* e) {
  const auto i = static_cast<std::uint32_t>(slot) & mask;
  std::vector<record>& records = ring_[i];
  e->ring_index = i;
  e->heap_index = records.size();
  records.push_back({e->deadline_ns, e->sequence, e});
  occupied_[i / 64] |= std::uint64_t{1} << (i % 64);
  ++ring_size_;
}

void timer_wheel::remove(timer_entry* e) noexcept {
  if (e->ring_index == timer_entry::not_in_ring) {
    overflow_.remove(e);
    return;
  }
  std::vector<record>& records = ring_[e->ring_index];
  const record last = records.back();
  records.pop_back();
  if (last.entry != e) {
    records[e->heap_index] = last;
    last.entry->heap_index = e->heap_index;
  }
  if (records.empty()) occupied_[e->ring_index / 64] &= ~(std::uint64_t{1} << (e->ring_index % 64));
  --ring_size_;
  e->heap_index = timer_entry::not_queued;
}

void timer_wheel::take_due(std::int64_t now_ns, std::vector<timer_entry*>& out) {
  const std::int64_t due_slot = now_ns / slot_ns_;  // slots up to here have ended
  if (due_slot < cursor_) return;
  due_.clear();
  // The ring holds slots cursor_ .. cursor_ + slot_count - 1; those up to
  // due_slot have ended (all of them, if the loop was away a long time).
  const std::int64_t ended = std::min<std::int64_t>(due_slot - cursor_ + 1, slot_count);
  for (std::int64_t k = 0; k < ended; ++k) {
    const auto i = static_cast<std::uint32_t>(cursor_ + k) & mask;
    if ((occupied_[i / 64] >> (i % 64) & 1) != 0) take_slot(i, due_);
  }
  cursor_ = due_slot + 1;
  refill_from_overflow(due_slot, due_);
  std::sort(due_.begin(), due_.end(), [](const record& a, const record& b) {
    return earlier(a.deadline_ns, a.sequence, b.deadline_ns, b.sequence);
  });
  for (const record& r : due_) out.push_back(r.entry);
}

void timer_wheel::take_slot(std::uint32_t i, std::vector<record>& due) {
  std::vector<record>& records = ring_[i];
  for (const record& r : records) {
    r.entry->heap_index = timer_entry::not_queued;
    due.push_back(r);
  }
  ring_size_ -= records.size();
  records.clear();
  occupied_[i / 64] &= ~(std::uint64_t{1} << (i % 64));
}

// refill_from_overflow: the cursor moved, so overflow entries may now be due
// (after a long absence) or within the ring's reach.
void timer_wheel::refill_from_overflow(std::int64_t due_slot, std::vector<record>& due) {
  const std::int64_t reach = cursor_ + static_cast<std::int64_t>(slot_count);
  while (timer_entry* e = overflow_.top()) {
    const std::int64_t slot = slot_of(e->deadline_ns);
    if (slot >= reach) return;
    overflow_.pop();
    if (slot <= due_slot) {
      e->heap_index = timer_entry::not_queued;
      due.push_back({e->deadline_ns, e->sequence, e});
    } else {
      place(slot, e);
    }
  }
}

std::uint32_t timer_wheel::next_occupied() const noexcept {
  const auto start = static_cast<std::uint32_t>(cursor_) & mask;
  for (std::uint32_t scanned = 0; scanned < slot_count;) {
    const std::uint32_t i = (start + scanned) & mask;
    const std::uint64_t bits = occupied_[i / 64] >> (i % 64);
    if (bits != 0) return (i + static_cast<std::uint32_t>(std::countr_zero(bits))) & mask;
    scanned += 64 - i % 64;
  }
  return slot_count;
}

std::int64_t timer_wheel::next_wake() const noexcept {
  if (ring_size_ != 0) {
    const std::uint32_t i = next_occupied();
    const std::uint32_t ahead = (i - static_cast<std::uint32_t>(cursor_)) & mask;
    return (cursor_ + ahead) * slot_ns_;
  }
  if (const timer_entry* e = overflow_.top()) return slot_of(e->deadline_ns) * slot_ns_;
  return INT64_MAX;
}

}  // namespace spindle::detail
