// lib/io/socket.hpp: what TCP connections, listeners and UDP sockets share:
// a libuv handle owned by the loop, its file descriptor used directly
// by fibers for the fast paths, and the closing protocol.
//
// Vocabulary
//   handle     the uv_tcp_t/uv_udp_t (a listener's: the uv_poll_t watching
//              its socket); touched only on its loop.
//   fd         the handle's descriptor, read once on its loop when the
//              socket is set up. Fibers call send()/sendto()/shutdown()/
//              setsockopt() on it directly (no loop round trip); those calls
//              never block (MSG_DONTWAIT) and never touch libuv's state.
//   closed     the user-visible state: no new operation starts.
//   teardown   uv_close of the handle on its loop; the object may be
//              freed only once its close callback ran.
//
// The hard part is that a fiber may be inside send() on the fd while another
// fiber closes the socket: the descriptor number must not be closed (and
// perhaps reused by an unrelated open()) under it. Closing is therefore:
//   1. mark_closed (any thread): under the lock, closed_ := true (seq_cst),
//      and the blocked fibers are claimed; they are woken after unlocking
//      and see closed_.
//   2. teardown (on the loop): wait until fd_users_ is 0, then uv_close.
// and every direct use of the fd is:
//   a. fd_users_ += 1 (seq_cst);  b. if closed_ (seq_cst): undo and fail;
//   c. the system call;  d. fd_users_ -= 1.
// Either (a) precedes the closer's read of fd_users_, and the closer waits
// for (d), or closed_ = true precedes (b) and the call is never made (the
// two seq_cst pairs cannot both miss each other). The wait is bounded by one
// nonblocking system call.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "io/loop_op.hpp"
#include "sched/spinlock.hpp"

namespace spindle::detail {

class socket_base {
 public:
  socket_base(const socket_base&) = delete;
  socket_base& operator=(const socket_base&) = delete;

  // close: marks the socket closed (waking blocked fibers with an error)
  // and waits until the loop closed the handle. Idempotent; any
  // thread. Parks the fiber (blocks a thread) for one loop round trip.
  void close() noexcept;
  // close_on_loop: on the loop: the same, started from a libuv callback or
  // a deadline (e.g. a write that timed out); does not wait.
  void close_on_loop() noexcept;

  bool is_closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  int fd() const noexcept { return fd_; }
  // acquire_fd: step a/b above; false if the socket is closed.
  bool acquire_fd() noexcept;
  // release_fd: step d.
  void release_fd() noexcept { fd_users_.fetch_sub(1, std::memory_order_release); }

  // initialized: on the loop: to be called right after uv_tcp_init/
  // uv_udp_init succeeded (which reset the handle's data pointer).
  void initialized() noexcept {
    handle_->data = this;
    initialized_ = true;
  }
  // is_initialized: whether the handle exists (and must be closed).
  bool is_initialized() const noexcept { return initialized_; }

  // loop: the event loop the handle lives on; every libuv call for it is
  // submitted there.
  event_loop& loop() const noexcept { return *loop_; }

  // name: the address shown in error messages.
  const std::string& name() const noexcept { return name_; }

 protected:
  socket_base(uv_handle_t* handle, event_loop& loop) noexcept : handle_(handle), loop_(&loop) {}
  virtual ~socket_base() = default;

  // mark_closed: step 1. Returns false if it was already closed.
  bool mark_closed() noexcept;
  // wake_blocked: called once, after closed_ became true (and lock_ was
  // released): claims and wakes every fiber blocked on the socket; they
  // re-check closed_ under lock_ and fail.
  virtual void wake_blocked() noexcept = 0;
  // on_handle_closed: on the loop, after the close callback.
  virtual void on_handle_closed() noexcept {}

  spinlock lock_;                    // guards the derived classes' queues
  std::atomic<bool> closed_{false};  // written under lock_, read anywhere
  int fd_ = -1;                      // written on its loop before publication
  std::string name_;                 // written before publication

 private:
  struct teardown_op;
  void begin_teardown() noexcept;  // on the loop
  static void on_close(uv_handle_t* h);

  uv_handle_t* handle_;
  event_loop* loop_;
  bool initialized_ = false;  // written on its loop before publication
  std::atomic<int> fd_users_{0};
  // Its loop's owner only.
  bool closing_ = false;
  bool handle_closed_ = false;
  teardown_op* teardown_waiters_ = nullptr;
};

}  // namespace spindle::detail
