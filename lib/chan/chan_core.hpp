// lib/chan/chan_core.hpp: the channel's data and the locked steps that
// chan_core.cpp (single operations) and select.cpp (select) share.
// The protocol is described at the top of chan_core.cpp.
#pragma once

#include <atomic>
#include <cstddef>

#include "sched/park.hpp"
#include "sched/spinlock.hpp"
#include "spindle/detail/chan_core.hpp"

namespace spindle::detail {

// op_queue: a FIFO of parked chan_ops (the channel's recvq or sendq).
// Guarded by the channel's lock.
class op_queue {
 public:
  void push_back(chan_op& op) noexcept;
  // unlink: removes `op` if it is still queued.
  void unlink(chan_op& op) noexcept;
  // pop_claimed: removes entries from the front until one whose owner it can
  // claim (waiter::try_claim), and returns that one; nullptr when none is left.
  // Entries whose owner was claimed elsewhere (another select case, a
  // deadline) are dropped on the way.
  chan_op* pop_claimed() noexcept;
  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t length() const noexcept {
    std::size_t n = 0;
    for (const chan_op* op = head_; op != nullptr; op = op->next) ++n;
    return n;
  }

 private:
  chan_op* head_ = nullptr;
  chan_op* tail_ = nullptr;
};

// channel: the real chan_core. The ring buffer follows the object in the same
// allocation.
class channel final : public chan_core {
 public:
  static channel& of(chan_core* c) noexcept { return static_cast<channel&>(*c); }
  static const channel& of(const chan_core* c) noexcept { return static_cast<const channel&>(*c); }

  channel(std::size_t capacity, const elem_ops& ops, unsigned char* buffer,
          void* allocation) noexcept
      : capacity_(capacity), ops_(ops), buffer_(buffer), allocation_(allocation) {
    // Members are laid out in declaration order: lock_ and closed_ share
    // the first 8 bytes, then count_, capacity_, ops_, recvq_, sendq_.
    static_assert(sizeof(primitive_lock) + sizeof(std::atomic<bool>) <= 8 &&
                      8 + 3 * sizeof(void*) + 2 * sizeof(op_queue) <= 64,
                  "an operation's fields must share the channel's first cache line");
  }

  // The locked steps. Each requires lock_ held. A step that completes a
  // parked partner returns the partner's waiter through `partner`; the caller
  // must call partner->wake() after releasing every lock it holds.

  // poll_send: completes `op` now if it can: hands the value to a parked
  // receiver, or buffers it. Returns done, closed or would_block.
  op_status poll_send(chan_op& op, waiter*& partner) noexcept;
  // poll_recv: completes `op` now if it can: takes a parked sender's value
  // (through the buffer when there is one, keeping FIFO order) or a buffered
  // one. Returns done, closed (closed and drained) or would_block.
  op_status poll_recv(chan_op& op, waiter*& partner) noexcept;
  // enqueue: links `op` (owner already set) into sendq_ or recvq_.
  void enqueue(chan_op& op) noexcept { (op.is_send ? sendq_ : recvq_).push_back(op); }
  // dequeue: unlinks `op` if a waker has not already done so.
  void dequeue(chan_op& op) noexcept { (op.is_send ? sendq_ : recvq_).unlink(op); }
  // close_locked: marks the channel closed, completes every parked operation
  // with `closed`, and returns their ops chained through chan_op::next (the
  // caller wakes each owner after unlocking). Returns false when already closed.
  bool close_locked(chan_op*& to_wake) noexcept;

  primitive_lock& lock() noexcept { return lock_; }
  const elem_ops& ops() const noexcept { return ops_; }
  void* allocation() const noexcept { return allocation_; }  // what chan_core::create allocated
  void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  bool release() noexcept { return refs_.fetch_sub(1, std::memory_order_acq_rel) == 1; }
  void destroy_buffered() noexcept;

  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t size() const noexcept { return count_.load(std::memory_order_relaxed); }
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

  // parked_senders, parked_receivers: entries queued right now, for tests
  // (tests/chan use them to know that a party has parked; no sleeping).
  std::size_t parked_senders() noexcept { return locked_length(sendq_); }
  std::size_t parked_receivers() noexcept { return locked_length(recvq_); }

 private:
  void* slot_at(std::size_t index) const noexcept { return buffer_ + index * ops_.size; }
  std::size_t locked_length(const op_queue& queue) noexcept {
    lock_.lock();
    std::size_t n = queue.length();
    lock_.unlock();
    return n;
  }
  std::size_t advance(std::size_t index) const noexcept {
    return index + 1 == capacity_ ? 0 : index + 1;
  }

  // The first cache line (the channel is allocated 64-byte aligned) holds
  // everything an operation that does not touch the buffer reads or writes:
  // a handoff to a parked partner, a park, a failed try. In idle_cpu every
  // operation is one of those, on a line cold since the pair's last round
  // (straddling two lines, it cost a second miss). The buffer's indices, its
  // address and the reference count are on the second line.
  primitive_lock lock_;
  std::atomic<bool> closed_{false};  // written under lock_; read unlocked by closed()
  // Guarded by lock_. Invariants (Go's chan.go):
  //   at least one of sendq_ and recvq_ holds no claimable entry;
  //   count_ > 0 implies recvq_ holds no claimable entry;
  //   count_ < capacity_ implies sendq_ holds no claimable entry.
  // (Unclaimable entries, left by a select that won elsewhere or an operation
  // that timed out, may linger until their owner or a waker unlinks them.)
  std::atomic<std::size_t> count_{0};  // atomic only so size() may read it unlocked
  const std::size_t capacity_;
  const elem_ops& ops_;
  op_queue recvq_;
  op_queue sendq_;

  std::size_t recvx_ = 0;        // next slot to receive from
  std::size_t sendx_ = 0;        // next slot to send into
  unsigned char* const buffer_;  // capacity_ slots of ops_.size bytes
  void* const allocation_;       // the channel's allocation: padding, the channel, the buffer
  std::atomic<std::size_t> refs_{1};
};

// raise_send_on_closed: throws usage_error("send on closed channel").
[[noreturn]] void raise_send_on_closed();

}  // namespace spindle::detail
