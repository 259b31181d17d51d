// spindle/chan.hpp: channels, Go's typed pipes between fibers and threads.
//
//   spindle::chan<int> c(16);                 // buffers 16 values; chan<int>(0) is unbuffered
//   spindle::go([c] { for (int i = 0; i < 100; ++i) c.send(i); c.close(); });
//   for (int v : c) use(v);                   // receives until closed and drained
//
// A chan<T> is a cheap shared handle: copies refer to the same channel, which
// lives while any handle does. A default-constructed chan<T> is nil (Go's nil
// channel): it refers to no channel; a select case on it never fires, and any
// other operation on it throws usage_error.
//
// Every blocking operation parks the calling fiber, or blocks the calling
// plain thread; fibers and threads may share a channel freely. A value sent
// to a receiver that is already waiting goes straight to it, and that
// receiver runs next on the sender's processor. Waiters are served first in,
// first out. T must be nothrow move-constructible; move-only T works.
#pragma once

#include <chrono>
#include <cstddef>
#include <iterator>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

#include "spindle/detail/chan_core.hpp"
#include "spindle/error.hpp"

namespace spindle {

namespace detail {

// raw_slot: storage for one T that the channel core may construct into.
template <class T>
class raw_slot {
 public:
  raw_slot() noexcept = default;
  raw_slot(const raw_slot&) = delete;
  raw_slot& operator=(const raw_slot&) = delete;

  void* address() noexcept { return bytes_; }
  // take: moves the element the core constructed here out, and destroys it.
  std::optional<T> take() noexcept {
    T* element = std::launder(reinterpret_cast<T*>(bytes_));
    std::optional<T> result(std::in_place, std::move(*element));
    element->~T();
    return result;
  }

 private:
  alignas(T) unsigned char bytes_[sizeof(T)];
};

[[noreturn]] void raise_nil_channel();

}  // namespace detail

// chan<T>: a channel of T values. See the top of this file.
template <class T>
class chan {
  static_assert(std::is_object_v<T> && !std::is_const_v<T>,
                "chan<T>: T must be a non-const object type");
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "chan<T>: T must be nothrow move-constructible");

 public:
  using value_type = T;

  // chan: a nil channel.
  chan() noexcept = default;
  // chan: a new channel buffering `capacity` values; 0 makes it unbuffered
  // (a send completes only when a receiver takes the value).
  explicit chan(std::size_t capacity)
      : core_(detail::chan_core::create(capacity, detail::elem_ops_for<T>)) {}
  chan(const chan& other) noexcept : core_(other.core_) {
    if (core_) core_->retain();
  }
  chan(chan&& other) noexcept : core_(std::exchange(other.core_, nullptr)) {}
  chan& operator=(chan other) noexcept {
    std::swap(core_, other.core_);
    return *this;
  }
  ~chan() {
    if (core_) core_->release();
  }

  // send: sends v. Blocks while the channel is full (for an unbuffered one:
  // until a receiver takes v), parking a fiber or blocking a thread. Throws
  // usage_error("send on closed channel") if the channel is or gets closed.
  void send(T&& v) { transfer(&v, true, detail::no_deadline); }
  void send(const T& v) requires std::is_copy_constructible_v<T> {
    T copy(v);
    send(std::move(copy));
  }

  // try_send: sends v if that can be done without blocking; returns false
  // otherwise and leaves v untouched. Throws on a closed channel, as send does.
  bool try_send(T&& v) { return transfer(&v, false, detail::no_deadline); }
  bool try_send(const T& v) requires std::is_copy_constructible_v<T> {
    T copy(v);
    return try_send(std::move(copy));
  }

  // send_for, send_until: as send, but give up when the timeout passes:
  // then they return false and v is untouched.
  template <class Rep, class Period>
  bool send_for(T&& v, const std::chrono::duration<Rep, Period>& timeout) {
    return transfer(&v, true, detail::deadline_after(timeout));
  }
  template <class Clock, class Duration>
  bool send_until(T&& v, const std::chrono::time_point<Clock, Duration>& deadline) {
    return transfer(&v, true, detail::deadline_at(deadline));
  }

  // recv: receives a value; empty once the channel is closed and every
  // buffered value has been received. Blocks while the channel is empty and
  // open, parking a fiber or blocking a thread.
  std::optional<T> recv() { return receive(true, detail::no_deadline); }

  // try_recv: receives a value if one is ready; never blocks. Empty when none
  // is, or when the channel is closed and drained (closed() tells these
  // apart once the channel is closed; a select with a default case tells
  // them apart in one step).
  std::optional<T> try_recv() { return receive(false, detail::no_deadline); }

  // recv_for, recv_until: as recv, but give up (empty) when the timeout passes.
  template <class Rep, class Period>
  std::optional<T> recv_for(const std::chrono::duration<Rep, Period>& timeout) {
    return receive(true, detail::deadline_after(timeout));
  }
  template <class Clock, class Duration>
  std::optional<T> recv_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    return receive(true, detail::deadline_at(deadline));
  }

  // close: no more values will be sent. Every blocked receiver and sender
  // wakes; receivers get the buffered values first, then nothing; blocked
  // and later senders throw. Does not block. Throws usage_error("close of
  // closed channel") the second time.
  void close() { core()->close(); }

  // capacity: how many values the channel buffers (0: unbuffered).
  std::size_t capacity() const { return core()->capacity(); }
  // size: how many values are buffered right now.
  std::size_t size() const { return core()->size(); }
  // closed: whether close() has been called.
  bool closed() const { return core()->closed(); }

  // operator bool: false for a nil channel.
  explicit operator bool() const noexcept { return core_ != nullptr; }
  // ==: whether two handles refer to the same channel (or both are nil).
  friend bool operator==(const chan& a, const chan& b) noexcept { return a.core_ == b.core_; }

  // iterator: range-for receives until the channel is closed and drained.
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;

    iterator() noexcept = default;
    T& operator*() noexcept { return *current_; }
    iterator& operator++() {
      current_ = channel_->recv();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept {
      return !it.current_.has_value();
    }

   private:
    friend class chan;
    explicit iterator(chan* channel) : channel_(channel), current_(channel->recv()) {}
    chan* channel_ = nullptr;
    std::optional<T> current_;
  };
  // begin: receives the first value (blocks as recv does).
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

  // core_or_nil: the type-erased channel, for select; nullptr for a nil channel.
  detail::chan_core* core_or_nil() const noexcept { return core_; }

 private:
  detail::chan_core* core() const {
    if (core_ == nullptr) detail::raise_nil_channel();
    return core_;
  }
  bool transfer(T* value, bool blocking, detail::time_point deadline) {
    return core()->send(value, blocking, deadline) == detail::op_status::done;
  }
  std::optional<T> receive(bool blocking, detail::time_point deadline) {
    detail::raw_slot<T> slot;
    if (core()->recv(slot.address(), blocking, deadline) != detail::op_status::done) {
      return std::nullopt;
    }
    return slot.take();
  }

  detail::chan_core* core_ = nullptr;
};

}  // namespace spindle
