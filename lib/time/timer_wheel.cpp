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

void timer_wheel::push(timer_entry* e) {
  e->sequence = next_sequence_++;
  const std::int64_t slot = std::max(slot_of(e->deadline_ns), cursor_);
  if (slot - cursor_ < static_cast<std::int64_t>(slot_count)) {
    place(slot, e);
  } else {
    e->ring_index = timer_entry::not_in_ring;
    overflow_.push(e);
  }
}

void timer_wheel::place(std::int64_t slot, timer_entry* e) {
  const auto i = static_cast<std::uint32_t>(slot) & mask;
  std::vector<record>& records = ring_[i];
  if (records.capacity() == 0 && !spare_.empty()) {
    records = std::move(spare_.back());
    spare_.pop_back();
  }
  e->ring_index = i;
  e->heap_index = records.size();
  records.push_back({e->deadline_ns, e->sequence, e});
  slot_bounds& b = bounds_[i];
  b.earliest = std::min(b.earliest, e->deadline_ns);
  b.latest = std::max(b.latest, e->deadline_ns);
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
  slot_bounds& b = bounds_[e->ring_index];
  if (records.empty()) {
    occupied_[e->ring_index / 64] &= ~(std::uint64_t{1} << (e->ring_index % 64));
    b = slot_bounds{};
  } else if (e->deadline_ns == b.earliest || e->deadline_ns == b.latest) {
    b.stale = true;
  }
  --ring_size_;
  e->heap_index = timer_entry::not_queued;
}

void timer_wheel::take_due(std::int64_t now_ns, std::vector<timer_entry*>& out) {
  const std::int64_t due_slot = now_ns / slot_ns_;  // slots up to here have ended
  due_.clear();
  if (due_slot >= cursor_) {
    // The ring holds slots cursor_ .. cursor_ + slot_count - 1; those up to
    // due_slot have ended (all of them, if the loop was away a long time).
    const std::int64_t ended = std::min<std::int64_t>(due_slot - cursor_ + 1, slot_count);
    for (std::int64_t k = 0; k < ended; ++k) {
      const auto i = static_cast<std::uint32_t>(cursor_ + k) & mask;
      if (occupied(i)) take_slot(i, due_);
    }
    cursor_ = due_slot + 1;
    refill_from_overflow(due_slot, due_);
  }
  // The slot under way (the cursor's) holds deadlines on both sides of now.
  const auto current = static_cast<std::uint32_t>(cursor_) & mask;
  if (occupied(current) && bounds(current).earliest <= now_ns) {
    take_due_in_slot(current, now_ns, due_);
  }
  if (due_.empty()) return;
  const auto by_deadline = [](const record& a, const record& b) {
    return earlier(a.deadline_ns, a.sequence, b.deadline_ns, b.sequence);
  };
  // Sleepers that slept for the same time were pushed in deadline order:
  // a sorted batch (idle_cpu's every round) skips the sort.
  if (!std::is_sorted(due_.begin(), due_.end(), by_deadline)) {
    std::sort(due_.begin(), due_.end(), by_deadline);
  }
  for (const record& r : due_) out.push_back(r.entry);
}

void timer_wheel::take_slot(std::uint32_t i, std::vector<record>& due) {
  std::vector<record>& records = ring_[i];
  for (const record& r : records) {
    r.entry->heap_index = timer_entry::not_queued;
    due.push_back(r);
  }
  ring_size_ -= records.size();
  release_buffer(records);
  occupied_[i / 64] &= ~(std::uint64_t{1} << (i % 64));
  clear_bounds(i);
}

// release_buffer: an emptied slot gives its buffer to the spares, for the
// next slot that fills (see "Buffers" in timer_wheel.hpp).
void timer_wheel::release_buffer(std::vector<record>& records) {
  records.clear();
  spare_.push_back(std::move(records));
  records = std::vector<record>();
}

// take_due_in_slot: moves the records of slot i due at now_ns to `due`.
void timer_wheel::take_due_in_slot(std::uint32_t i, std::int64_t now_ns, std::vector<record>& due) {
  std::vector<record>& records = ring_[i];
  slot_bounds kept_bounds;
  std::size_t kept = 0;
  for (const record& r : records) {
    if (r.deadline_ns <= now_ns) {
      r.entry->heap_index = timer_entry::not_queued;
      due.push_back(r);
    } else {
      r.entry->heap_index = kept;
      records[kept++] = r;
      kept_bounds.earliest = std::min(kept_bounds.earliest, r.deadline_ns);
      kept_bounds.latest = std::max(kept_bounds.latest, r.deadline_ns);
    }
  }
  ring_size_ -= records.size() - kept;
  records.resize(kept);
  bounds_[i] = kept_bounds;
  if (kept == 0) {
    release_buffer(records);
    occupied_[i / 64] &= ~(std::uint64_t{1} << (i % 64));
  }
}

const timer_wheel::slot_bounds& timer_wheel::bounds(std::uint32_t i) const noexcept {
  slot_bounds& b = bounds_[i];
  if (b.stale) {
    b = slot_bounds{};
    for (const record& r : ring_[i]) {
      b.earliest = std::min(b.earliest, r.deadline_ns);
      b.latest = std::max(b.latest, r.deadline_ns);
    }
  }
  return b;
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

std::int64_t timer_wheel::earliest() const noexcept {
  if (ring_size_ != 0) return bounds(next_occupied()).earliest;
  if (const timer_entry* e = overflow_.top()) return e->deadline_ns;
  return INT64_MAX;
}

// wake_time: the overflow heap starts slot_count slots past the ring's
// first slot, far beyond any slack, so only ring slots can join the first.
// A slot wholly within the slack counts by its latest deadline; only one
// that straddles the limit has its records looked at.
std::int64_t timer_wheel::wake_time(std::int64_t slack_ns) const noexcept {
  const std::int64_t first = earliest();
  if (ring_size_ == 0) return first;
  const std::int64_t limit = first + std::min(slack_ns, INT64_MAX - first);
  const std::uint32_t start = next_occupied();
  const std::int64_t start_slot = cursor_ + ((start - static_cast<std::uint32_t>(cursor_)) & mask);
  const std::int64_t last_slot =
      std::min(slot_of(limit), cursor_ + static_cast<std::int64_t>(slot_count) - 1);
  std::int64_t wake = first;
  for (std::int64_t slot = start_slot; slot <= last_slot; ++slot) {
    const auto i = static_cast<std::uint32_t>(slot) & mask;
    if (!occupied(i)) continue;
    const slot_bounds& b = bounds(i);
    if (b.latest <= limit) {
      wake = std::max(wake, b.latest);
    } else if (b.earliest <= limit) {
      for (const record& r : ring_[i]) {
        if (r.deadline_ns <= limit) wake = std::max(wake, r.deadline_ns);
      }
    }
  }
  return wake;
}

}  // namespace spindle::detail
