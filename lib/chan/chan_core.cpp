// lib/chan/chan_core.cpp: channels: buffering, direct handoff, parking, close.
//
// Vocabulary
//   channel   the shared state behind every chan<T> handle (chan_core.hpp):
//             a spinlock, an optional ring buffer of `capacity` elements, and
//             two FIFO wait queues, recvq and sendq.
//   op        a chan_op: one send or receive, on its caller's stack. While
//             parked it is the wait-queue entry (Go's sudog): its `slot` is
//             the sender's value, or the receiver's raw storage for one.
//   owner     the waiter behind a parked op (one per single operation, one
//             per select shared by all its cases); on the caller's stack too.
//             A single send or receive keeps its op and waiter in one cache
//             line (single_op): the waker fetches one line from the parked
//             fiber's stack, not two or three. In idle_cpu that line is
//             cold (its fiber parked a millisecond ago) and the misses on it
//             were a tenth of the process's CPU time.
//   claim     waiter::try_claim(): the right to complete a parked op. Exactly
//             one party claims each owner (a waker, or its own deadline).
//   handoff   completing a parked partner directly: a sender moves its value
//             into a parked receiver's slot (on the receiver's stack), or a
//             receiver takes a parked sender's value; the buffer is bypassed.
//
// Elements never need T: the channel moves them with elem_ops (move_into,
// destroy). chan<T> requires T to be nothrow move-constructible, so no step
// under the lock can throw.
//
// The park protocol (Go's gopark/park_m with unlockf; see lib/sched/park.hpp)
//   Blocking side, e.g. recv on an empty channel:
//     B1. lock the channel; poll: complete now if a partner or buffered
//         element is there (then unlock, wake the partner if any, return);
//     B2. otherwise set op.owner to a waiter on this stack, link op into recvq;
//     B3. untimed, from a fiber: waiter::park_holding(lock): switch out
//         still holding the lock, which the parker's worker releases once
//         the fiber's context is saved (Go's park_m with its unlockf). Only
//         wakers holding the lock find op, so they find the fiber parked:
//         the claim needs no CAS and the wake readies it at once. The lock
//         is held for the switch only (tens of ns on a direct switch), and
//         no fiber of the parker's processor runs before it is released.
//         Otherwise (a deadline, or a plain thread):
//         waiter::park_until(lock, deadline): unlock, then switch out (a
//         plain thread sleeps on a futex word). No waker can see op before
//         B2. A waker may claim and wake the owner while its fiber is still
//         switching out: the waiter's state word (lib/sched/park.hpp) then
//         has the parker's own worker ready the fiber once its context is
//         saved. A deadline's timer is armed by the parker's worker after the
//         switch, before it settles the state word, and wakes like any
//         waker (claim, then wake through the state word): it never
//         resumes the fiber before the worker is done with its park.
//     B4. on return, op.status says how the op ended (done or closed), written
//         by the waker before wake(); nothing else to re-check, no re-lock.
//         A timed park that returns false (deadline, nobody claimed) re-locks
//         and unlinks op if no waker has dropped it already.
//   Waking side, e.g. send finding recvq non-empty:
//     W1. under the channel lock, pop entries until one's owner is claimed
//         (try_claim, acq_rel); unclaimable entries belong to a select that
//         won on another channel or to an op past its deadline: drop them;
//     W2. complete the op under the lock: move the value into its slot, set
//         op.status;
//     W3. release the lock, then owner->wake() (Go: never ready a G while
//         holding a channel lock). The wake readies a fiber into the waker's
//         runnext, so the woken receiver runs next on the sender's processor
//         (or, when woken while still switching out, on its own processor).
//         After wake() the op and its owner may be gone: read nothing after it.
//   Ordering: the waker's writes of W2 happen before the owner's reads in B4
//   through the wake (run-queue release/acquire, or the futex word).
//
// Buffered channels keep FIFO order (Go's recv): a receive from a full buffer
// with a parked sender takes the oldest element and puts the sender's value
// into the freed slot. close() completes every parked op under the lock with
// `closed` and wakes them all after unlocking; receivers first drain the
// buffer, as in Go.
//
// Alternatives rejected
//   Lock-free fast paths for failed non-blocking ops (Go reads two words
//   without the lock): they need the queue state readable unlocked, and the
//   lock is short; not worth the subtlety until a benchmark says so.
//   Per-operation heap waiters (a sudog cache): fiber stacks never move, so
//   the entry lives on the stack for free.
#include "chan/chan_core.hpp"

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <new>
#include <type_traits>

#include "spindle/error.hpp"

namespace spindle::detail {

void raise_send_on_closed() { throw usage_error("send on closed channel"); }

void raise_nil_channel() {
  throw usage_error("operation on a nil channel (a default-constructed or moved-from chan)");
}

void op_queue::push_back(chan_op& op) noexcept {
  op.prev = tail_;
  op.next = nullptr;
  (tail_ ? tail_->next : head_) = &op;
  tail_ = &op;
  op.linked = true;
}

void op_queue::unlink(chan_op& op) noexcept {
  if (!op.linked) return;
  (op.prev ? op.prev->next : head_) = op.next;
  (op.next ? op.next->prev : tail_) = op.prev;
  op.prev = op.next = nullptr;
  op.linked = false;
}

chan_op* op_queue::pop_claimed() noexcept {
  while (chan_op* op = head_) {
    unlink(*op);
    if (op->owner->try_claim()) return op;
  }
  return nullptr;
}

op_status channel::poll_send(chan_op& op, waiter*& partner) noexcept {
  if (closed_.load(std::memory_order_relaxed)) return op_status::closed;
  if (chan_op* receiver = recvq_.pop_claimed()) {
    ops_.move_into(receiver->slot, op.slot);
    receiver->status = op_status::done;
    partner = receiver->owner;
    return op_status::done;
  }
  std::size_t count = count_.load(std::memory_order_relaxed);
  if (count < capacity_) {
    ops_.move_into(slot_at(sendx_), op.slot);
    sendx_ = advance(sendx_);
    count_.store(count + 1, std::memory_order_relaxed);
    return op_status::done;
  }
  return op_status::would_block;
}

op_status channel::poll_recv(chan_op& op, waiter*& partner) noexcept {
  if (chan_op* sender = sendq_.pop_claimed()) {
    if (capacity_ == 0) {
      ops_.move_into(op.slot, sender->slot);
    } else {
      // The buffer is full (invariant): take its head, refill the freed slot
      // with the sender's value; the ring stays full, so sendx_ == recvx_.
      void* head = slot_at(recvx_);
      ops_.move_into(op.slot, head);
      ops_.destroy(head);
      ops_.move_into(head, sender->slot);
      recvx_ = advance(recvx_);
      sendx_ = recvx_;
    }
    sender->status = op_status::done;
    partner = sender->owner;
    return op_status::done;
  }
  std::size_t count = count_.load(std::memory_order_relaxed);
  if (count > 0) {
    void* head = slot_at(recvx_);
    ops_.move_into(op.slot, head);
    ops_.destroy(head);
    recvx_ = advance(recvx_);
    count_.store(count - 1, std::memory_order_relaxed);
    return op_status::done;
  }
  return closed_.load(std::memory_order_relaxed) ? op_status::closed : op_status::would_block;
}

bool channel::close_locked(chan_op*& to_wake) noexcept {
  if (closed_.load(std::memory_order_relaxed)) return false;
  closed_.store(true, std::memory_order_release);
  chan_op* chain = nullptr;
  for (op_queue* queue : {&recvq_, &sendq_}) {
    while (chan_op* op = queue->pop_claimed()) {
      op->status = op_status::closed;
      op->next = chain;
      chain = op;
    }
  }
  to_wake = chain;
  return true;
}

void channel::destroy_buffered() noexcept {
  std::size_t index = recvx_;
  for (std::size_t n = count_.load(std::memory_order_relaxed); n > 0; --n) {
    ops_.destroy(slot_at(index));
    index = advance(index);
  }
}

namespace {

// Layout of one allocation: padding up to the channel's alignment, the
// channel, then the ring buffer. The channel starts a cache line (its first
// line's fields: chan_core.hpp). Aligned operator new would do the padding
// too, but glibc's aligned allocation is several times slower than malloc,
// and ping_pong allocates a channel per round trip (it cost a third there).
constexpr std::size_t cache_line = 64;

struct layout {
  std::size_t align;          // of the channel
  std::size_t buffer_offset;  // from the channel
  std::size_t bytes;          // to allocate, padding included
};

layout layout_for(std::size_t capacity, const elem_ops& ops) noexcept {
  const std::size_t align = std::max({cache_line, alignof(channel), ops.align});
  const std::size_t offset = (sizeof(channel) + ops.align - 1) / ops.align * ops.align;
  const std::size_t padding = align - __STDCPP_DEFAULT_NEW_ALIGNMENT__;
  return {align, offset, padding + offset + capacity * ops.size};
}

}  // namespace

chan_core* chan_core::create(std::size_t capacity, const elem_ops& ops) {
  if (ops.size != 0 && capacity > (static_cast<std::size_t>(-1) / 2) / ops.size) {
    throw std::bad_alloc();
  }
  const layout l = layout_for(capacity, ops);
  void* allocation = ::operator new(l.bytes);
  const auto address = reinterpret_cast<std::uintptr_t>(allocation);
  auto* memory = reinterpret_cast<unsigned char*>((address + l.align - 1) & ~(l.align - 1));
  return ::new (memory) channel(capacity, ops, memory + l.buffer_offset, allocation);
}

void chan_core::retain() noexcept { channel::of(this).retain(); }

void chan_core::release() noexcept {
  channel& c = channel::of(this);
  if (!c.release()) return;
  c.destroy_buffered();
  void* allocation = c.allocation();
  c.~channel();
  ::operator delete(allocation);
}

namespace {

// single_op: a send's or receive's chan_op and the waiter it parks with, in
// one cache line: a waker pops the op, claims and wakes the waiter, and
// finds both in the one line it fetches from the parked fiber's stack. The
// waiter is constructed only when the operation parks.
struct alignas(64) single_op {
  single_op(chan_core* c, void* slot, bool is_send) noexcept {
    op.channel = c;
    op.slot = slot;
    op.is_send = is_send;
  }
  // park: B2-B4 for this operation, with c's lock held; false when the
  // deadline passed first (the op is unlinked then). Untimed, the fiber
  // keeps the lock until it has switched out (waiter::park_holding).
  bool park(channel& c, time_point deadline) noexcept {
    waiter& self = *(op.owner = ::new (static_cast<void*>(waiter_storage)) waiter);
    c.enqueue(op);
    if (deadline == time_point::max()) {
      self.park_holding(c.lock());
      return true;
    }
    if (self.park_until(c.lock(), deadline)) return true;
    std::lock_guard guard(c.lock());
    c.dequeue(op);
    return false;
  }

  chan_op op;
  alignas(waiter) unsigned char waiter_storage[sizeof(waiter)];
};
static_assert(sizeof(single_op) == 64);
static_assert(std::is_trivially_destructible_v<waiter>);

}  // namespace

op_status chan_core::send(void* value, bool blocking, time_point deadline) {
  channel& c = channel::of(this);
  single_op single(this, value, true);
  chan_op& op = single.op;
  c.lock().lock();
  waiter* partner = nullptr;
  switch (c.poll_send(op, partner)) {
    case op_status::done:
      c.lock().unlock();
      if (partner) partner->wake();
      return op_status::done;
    case op_status::closed:
      c.lock().unlock();
      raise_send_on_closed();
    default:
      break;
  }
  if (!blocking) {
    c.lock().unlock();
    return op_status::would_block;
  }
  if (!single.park(c, deadline)) return op_status::timed_out;
  if (op.status == op_status::closed) raise_send_on_closed();
  return op_status::done;
}

op_status chan_core::recv(void* slot, bool blocking, time_point deadline) noexcept {
  channel& c = channel::of(this);
  single_op single(this, slot, false);
  chan_op& op = single.op;
  c.lock().lock();
  waiter* partner = nullptr;
  op_status status = c.poll_recv(op, partner);
  if (status != op_status::would_block || !blocking) {
    c.lock().unlock();
    if (partner) partner->wake();
    return status;
  }
  if (!single.park(c, deadline)) return op_status::timed_out;
  return op.status;
}

void chan_core::close() {
  channel& c = channel::of(this);
  chan_op* to_wake = nullptr;
  bool was_open;
  {
    std::lock_guard guard(c.lock());
    was_open = c.close_locked(to_wake);
  }
  if (!was_open) throw usage_error("close of closed channel");
  while (chan_op* op = to_wake) {
    to_wake = op->next;
    op->owner->wake();
  }
}

std::size_t chan_core::capacity() const noexcept { return channel::of(this).capacity(); }
std::size_t chan_core::size() const noexcept { return channel::of(this).size(); }
bool chan_core::closed() const noexcept { return channel::of(this).closed(); }

}  // namespace spindle::detail
