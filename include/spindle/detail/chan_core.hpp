// spindle/detail/chan_core.hpp: the type-erased channel behind chan<T> and select.
//
// chan<T> and select are thin templates over one non-template channel core
// (lib/chan/chan_core.cpp, whose design comment holds the protocol). The core
// never knows T: it moves elements between slots through an elem_ops table,
// and it describes every operation, blocking or not, by a chan_op record that
// the calling template keeps on its own stack. A parked operation's chan_op is
// the wait-queue entry (Go's sudog): blocking allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>

#include "spindle/detail/deadline.hpp"

namespace spindle::detail {

// elem_ops: how the core moves and destroys elements of one type.
struct elem_ops {
  std::size_t size;
  std::size_t align;
  // move_into: move-constructs an element in raw storage `to` from `from`;
  // `from` stays a valid moved-from object.
  void (*move_into)(void* to, void* from) noexcept;
  // destroy: ends the life of the element at `at`.
  void (*destroy)(void* at) noexcept;
};

template <class T>
inline constexpr elem_ops elem_ops_for{
    sizeof(T),
    alignof(T),
    [](void* to, void* from) noexcept { ::new (to) T(static_cast<T&&>(*static_cast<T*>(from))); },
    [](void* at) noexcept { static_cast<T*>(at)->~T(); },
};

// op_status: how a channel operation ended.
enum class op_status : std::uint8_t {
  pending,      // not finished (internal: a parked operation not yet completed)
  done,         // the value was sent, or a value was received
  closed,       // receive: the channel is closed and drained; send: it is closed
  would_block,  // a non-blocking operation found the channel not ready
  timed_out,    // the deadline passed first
};

class chan_core;
class waiter;  // lib/sched/park.hpp: the blocked party a parked chan_op belongs to

// chan_op: one send or receive, as the core sees it. Lives on the caller's
// stack for the whole operation (a select's cases), or in chan_core::send's
// and recv's frame next to their waiter, in one cache line (the line a waker
// on another processor has to fetch). Pointers first, flags last: 48 bytes.
struct chan_op {
  chan_core* channel = nullptr;  // nullptr: a nil channel (a select case that never fires)
  void* slot = nullptr;          // send: the value to move from; receive: raw storage for one

  // Wait-queue linkage. Guarded by the channel's lock; meaningful only while
  // `linked`. A waker that pops this entry clears `linked`.
  waiter* owner = nullptr;
  chan_op* prev = nullptr;
  chan_op* next = nullptr;
  bool linked = false;

  bool is_send = false;
  bool enabled = true;  // select: a disabled case never fires

  // Set by whoever completes the operation (the core, or a waker holding
  // the channel's lock after claiming `owner`); read by the owner after it
  // returns from park. `done` on a receive means *slot now holds a value.
  op_status status = op_status::pending;
};

// chan_core: a channel of elements of one type, shared by reference count.
// The class has no data here; lib/chan/chan_core.hpp derives the real
// channel from it. All members are defined in lib/chan/chan_core.cpp.
class chan_core {
 public:
  chan_core(const chan_core&) = delete;
  chan_core& operator=(const chan_core&) = delete;

  // create: a channel buffering `capacity` elements (0: unbuffered), with one
  // reference held by the caller. Throws std::bad_alloc.
  static chan_core* create(std::size_t capacity, const elem_ops& ops);

  void retain() noexcept;
  // release: drops one reference; the last one destroys buffered elements
  // and frees the channel.
  void release() noexcept;

  // send: moves *value into the channel. Blocks (parks the fiber, or
  // blocks the thread) while the channel is full, until `deadline`; with
  // `blocking` false it never blocks. Returns done, would_block or timed_out;
  // on a closed channel throws usage_error("send on closed channel"), and
  // *value is left untouched unless the result is done.
  op_status send(void* value, bool blocking, time_point deadline);
  // recv: constructs a received element in the raw storage *slot.
  // Blocks while the channel is empty and open, as send does. Returns done
  // (the storage now holds an element), closed, would_block or timed_out.
  op_status recv(void* slot, bool blocking, time_point deadline) noexcept;
  // close: marks the channel closed and wakes every parked sender and receiver.
  // Does not block. Throws usage_error("close of closed channel").
  void close();

  std::size_t capacity() const noexcept;
  // size: elements buffered right now (a snapshot).
  std::size_t size() const noexcept;
  // closed: whether close() has been called.
  bool closed() const noexcept;

 protected:
  chan_core() = default;
  ~chan_core() = default;
};

// select_default/select_timeout: what select_core returns when
// no case fired.
inline constexpr std::size_t select_default = static_cast<std::size_t>(-1);
inline constexpr std::size_t select_timeout = static_cast<std::size_t>(-2);

// select_core: performs one of `ops[0..count)`, chosen uniformly at random among
// those ready. When none is ready: returns select_default if `has_default`,
// otherwise blocks until one becomes ready (returns its index) or until
// `deadline` (returns select_timeout). `scratch` must hold 2 * count entries.
// A send case on a closed channel throws usage_error("send on closed channel").
// Defined in lib/chan/select.cpp.
std::size_t select_core(chan_op* ops, std::size_t count, std::uint16_t* scratch, bool has_default,
                        time_point deadline);

}  // namespace spindle::detail
