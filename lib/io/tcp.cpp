// lib/io/tcp.cpp: TCP connections and listeners (spindle/net.hpp).
//
// Vocabulary: a tcp_conn is one connection's state, owned by its tcp_stream;
// a tcp_acceptor one listener's, owned by its tcp_listener. Both are
// socket_bases (socket.hpp: handle, fd, the closing protocol).
//
// Reading. A connection reads all the time, not on demand: from the moment
// it is set up, libuv reads into the connection's buffer (alloc_cb hands out
// the buffer's free tail, so the kernel copies straight into it), and the
// read callback wakes the parked reader, if any. read() takes bytes from the
// buffer under the lock and parks only when it is empty. So in a
// request/response exchange the reader finds its bytes without a loop round
// trip and parks without one (it only links its waiter under the lock): no
// uv_async_send per read. Backpressure: the buffer grows from 4 KiB to
// 64 KiB; when it is full, the read callback stops reading (uv_read_stop)
// and the reader that drains it below half restarts it with one
// loop_request (resume_, at most one in flight). End of stream and errors
// are recorded after the bytes that preceded them, so nothing already
// received is lost; read() returns those bytes first.
//   Memory layout: the buffer is [0, head) consumed, [head, tail) unread,
//   [tail, capacity) free. libuv writes into the free part outside the lock
//   (between alloc_cb and read_cb); the reader only reads [head, tail) and
//   moves head, under the lock. Only alloc_cb (under the lock) moves the
//   unread bytes to the front or grows the buffer, and it does so only
//   between two libuv reads.
//
// Writing. write_all() sends straight from the calling fiber (send with
// MSG_DONTWAIT|MSG_NOSIGNAL, under socket_base's fd guard). Only when the
// kernel's buffer is full does it hand the rest to the loop (a write_op with
// uv_write on the caller's memory) and park until libuv wrote it all. The
// stream has one writer at a time and write_all returns only when every byte
// is written, so a direct send never overtakes a queued uv_write. A deadline
// on the queued part cannot withdraw it; the write_op's timeout closes the
// stream (uv_close cancels the write, whose callback then finishes the op).
//
// Accepting. The listening socket is ours (socket, bind, listen), watched by
// a uv_poll_t. When it is readable the loop accepts every pending
// connection (accept4), sets each up as a uv_tcp_t and starts its reads,
// into a queue of up to 128, and wakes one parked acceptor. When the queue
// is full it stops watching: the kernel's backlog holds the rest until an
// acceptor takes one and resumes accepting (resume_, one loop_request).
// When accept4 fails for want of a resource (EMFILE: out of descriptors;
// ENFILE, ENOBUFS, ENOMEM) the listener stops watching for a back-off of
// 5 ms, doubling up to 1 s, and hands the error to one accept() call, as
// Go's Accept returns it and http.Server retries with that back-off: the
// pending connections wait in the backlog and are accepted once descriptors
// are free again.
//   Not uv_listen: on EMFILE libuv accepts and closes the pending
// connections using a descriptor it keeps in reserve ("the EMFILE trick"),
// and once that reserve is lost (another thread took the descriptor in
// between, or RLIMIT_NOFILE was lowered below it) its accept loop calls the
// connection callback with EMFILE forever: the loop spins and every
// socket in the process stalls. Nor do clients learn anything useful from
// a connection closed at once.
//
// Alternatives rejected: reading on demand (uv_read_start when a reader
// parks, uv_read_stop when it has its bytes) costs two submissions per
// request; a per-connection uv_poll_t plus our own read()/write() is not
// allowed on a uv_tcp_t's descriptor, and would give up libuv's portable
// stream handling for the slow paths.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "io/address.hpp"
#include "io/socket.hpp"

namespace spindle::detail {
namespace {

constexpr std::size_t initial_buffer = 4 * 1024;
constexpr std::size_t max_buffer = 64 * 1024;
constexpr std::size_t max_accept_queue = 128;

// owned_request: a loop_request embedded in the object it works on.
template <class Owner>
struct owned_request : loop_request {
  owned_request(Owner* o, void (*fn)(loop_request*, uv_loop_t*) noexcept) noexcept : owner(o) {
    run = fn;
  }
  Owner* owner;
};

[[noreturn]] void throw_closed(const char* op, const std::string& name) {
  throw net_error(std::make_error_code(std::errc::bad_file_descriptor),
                  std::string(op) + " " + name + ": use of closed connection");
}

}  // namespace

class tcp_conn final : public socket_base {
 public:
  explicit tcp_conn(event_loop& loop) noexcept
      : socket_base(reinterpret_cast<uv_handle_t*>(&handle_), loop) {}

  uv_tcp_t* handle() noexcept { return &handle_; }
  const endpoint& remote() const noexcept { return remote_; }

  // set_up: on the loop, once the handle is connected: reads the fd and the
  // peer's address and starts reading. Returns a libuv status.
  int set_up() noexcept {
    uv_os_fd_t fd;
    int rc = uv_fileno(reinterpret_cast<uv_handle_t*>(&handle_), &fd);
    if (rc != 0) return rc;
    fd_ = fd;
    sockaddr_in6 peer{};
    int size = sizeof peer;
    rc = uv_tcp_getpeername(&handle_, reinterpret_cast<sockaddr*>(&peer), &size);
    if (rc != 0) return rc;
    remote_ = endpoint(&peer, static_cast<std::size_t>(size));
    name_ = remote_.to_string();
    uv_tcp_nodelay(&handle_, 1);  // Go's default: small writes go out at once
    reading_ = true;
    return uv_read_start(reinterpret_cast<uv_stream_t*>(&handle_), on_alloc, on_read);
  }

  std::size_t read(void* data, std::size_t size, time_point deadline) {
    if (size == 0) return 0;
    std::unique_lock lock(lock_);
    for (;;) {
      if (closed_.load(std::memory_order_relaxed)) {
        lock.unlock();
        throw_closed("read", name_);
      }
      if (tail_ != head_) return take_locked(data, size, lock);
      if (read_status_ == UV_EOF) return 0;
      if (read_status_ != 0) {
        const int status = read_status_;
        lock.unlock();
        throw_net_error("read", name_, status);
      }
      waiter w;
      reader_ = &w;
      lock.release();
      const bool woken = w.park_until(lock_, deadline);
      lock = std::unique_lock(lock_);
      if (!woken) {
        if (reader_ == &w) reader_ = nullptr;
        lock.unlock();
        throw_net_error("read", name_, UV_ETIMEDOUT);
      }
    }
  }

  void write_all(const char* data, std::size_t size, time_point deadline) {
    while (size > 0) {
      if (!acquire_fd()) throw_closed("write", name_);
      const ssize_t sent = ::send(fd_, data, size, MSG_DONTWAIT | MSG_NOSIGNAL);
      const int error = errno;
      release_fd();
      if (sent > 0) {
        data += sent;
        size -= static_cast<std::size_t>(sent);
        continue;
      }
      if (sent < 0 && error == EINTR) continue;
      if (sent < 0 && error != EAGAIN && error != EWOULDBLOCK) {
        throw_net_error("write", name_, uv_translate_sys_error(error));
      }
      write_queued(data, size, deadline);
      return;
    }
  }

  // shutdown_write, set_option, local: direct calls on the fd.
  void shutdown_write() {
    if (!acquire_fd()) throw_closed("shutdown", name_);
    const int rc = ::shutdown(fd_, SHUT_WR);
    const int error = errno;
    release_fd();
    if (rc != 0 && error != ENOTCONN) throw_net_error("shutdown", name_, -error);
  }

  void set_option(const char* op, int level, int name, int value) {
    if (!acquire_fd()) throw_closed(op, name_);
    const int rc = ::setsockopt(fd_, level, name, &value, sizeof value);
    const int error = errno;
    release_fd();
    if (rc != 0) throw_net_error(op, name_, -error);
  }

  endpoint local() {
    if (!acquire_fd()) throw_closed("local_address", name_);
    sockaddr_in6 address{};
    socklen_t size = sizeof address;
    const int rc = ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &size);
    const int error = errno;
    release_fd();
    if (rc != 0) throw_net_error("local_address", name_, -error);
    return endpoint(&address, size);
  }

 private:
  struct write_op : loop_op {
    write_op(tcp_conn* c, const char* data, std::size_t size, time_point deadline) noexcept
        : loop_op(start, deadline, c->loop()), conn(c) {
      buffer = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(size));
      on_timeout = [](loop_op* self) noexcept {
        static_cast<write_op*>(self)->conn->close_on_loop();  // cancels the write
      };
    }
    static void start(loop_request* r, uv_loop_t*) noexcept {
      auto* op = static_cast<write_op*>(r);
      if (op->conn->is_closed()) {
        op->finish(UV_ECANCELED);
        return;
      }
      op->request.data = op;
      const int rc = uv_write(
          &op->request, reinterpret_cast<uv_stream_t*>(&op->conn->handle_), &op->buffer, 1,
          [](uv_write_t* req, int status) { static_cast<write_op*>(req->data)->finish(status); });
      if (rc != 0) {
        op->finish(rc);
        return;
      }
      op->arm_deadline();
    }
    tcp_conn* conn;
    uv_write_t request{};
    uv_buf_t buffer{};
  };

  void write_queued(const char* data, std::size_t size, time_point deadline) {
    // uv_write takes at most 4 GiB per buffer; queue larger writes in parts.
    while (size > 0) {
      const std::size_t part = std::min<std::size_t>(size, 1u << 30);
      write_op op(this, data, part, deadline);
      const int status = op.wait();
      if (op.timed_out()) throw_net_error("write", name_, UV_ETIMEDOUT);
      if (status == UV_ECANCELED) throw_closed("write", name_);
      if (status != 0) throw_net_error("write", name_, status);
      data += part;
      size -= part;
    }
  }

  // take_locked: copies buffered bytes out; restarts reading if the buffer
  // had filled up and is now below half.
  std::size_t take_locked(void* data, std::size_t size, std::unique_lock<spinlock>& lock) {
    const std::size_t n = std::min(size, tail_ - head_);
    std::memcpy(data, buffer_.get() + head_, n);
    head_ += n;  // never tail_: libuv may be writing at tail_ right now
    const bool resume = !reading_ && !resume_queued_ && read_status_ == 0 &&
                        tail_ - head_ < capacity_ / 2 && !closed_.load(std::memory_order_relaxed);
    if (resume) resume_queued_ = true;
    lock.unlock();
    if (resume) loop().submit(&resume_);
    return n;
  }

  static void resume_reading(loop_request* r, uv_loop_t*) noexcept {
    tcp_conn* self = static_cast<owned_request<tcp_conn>*>(r)->owner;
    {
      std::lock_guard lock(self->lock_);
      self->resume_queued_ = false;
      if (self->closed_.load(std::memory_order_relaxed) || self->read_status_ != 0) return;
      self->reading_ = true;
    }
    uv_read_start(reinterpret_cast<uv_stream_t*>(&self->handle_), on_alloc, on_read);
  }

  static tcp_conn* from(uv_handle_t* h) noexcept {
    return static_cast<tcp_conn*>(static_cast<socket_base*>(h->data));
  }

  // on_alloc: on the loop: the free tail of the buffer, after moving the
  // unread bytes to the front or growing the buffer if that tail is small.
  static void on_alloc(uv_handle_t* h, std::size_t, uv_buf_t* out) {
    tcp_conn* self = from(h);
    std::lock_guard lock(self->lock_);
    self->make_room_locked();
    *out = uv_buf_init(self->buffer_.get() + self->tail_,
                       static_cast<unsigned>(self->capacity_ - self->tail_));
  }

  void make_room_locked() {
    if (buffer_ == nullptr) {
      buffer_.reset(new char[initial_buffer]);
      capacity_ = initial_buffer;
    }
    const std::size_t unread = tail_ - head_;
    if (unread == 0) {
      head_ = tail_ = 0;
    } else if (unread == capacity_ && capacity_ < max_buffer) {
      std::unique_ptr<char[]> larger(new char[capacity_ * 2]);
      std::memcpy(larger.get(), buffer_.get() + head_, unread);
      buffer_ = std::move(larger);
      capacity_ *= 2;
      head_ = 0;
      tail_ = unread;
    } else if (head_ != 0 && capacity_ - tail_ < capacity_ / 4) {
      std::memmove(buffer_.get(), buffer_.get() + head_, unread);
      head_ = 0;
      tail_ = unread;
    }
  }

  // on_read: on the loop: records what libuv read and wakes the reader.
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
    if (nread == 0) return;  // EAGAIN
    tcp_conn* self = from(reinterpret_cast<uv_handle_t*>(stream));
    waiter* wake = nullptr;
    {
      std::lock_guard lock(self->lock_);
      if (nread > 0) {
        self->tail_ += static_cast<std::size_t>(nread);
        if (self->tail_ - self->head_ == max_buffer) self->stop_reading_locked(stream);
      } else {
        self->read_status_ = nread == UV_EOF ? self->eof_or_reset() : static_cast<int>(nread);
        self->stop_reading_locked(stream);
      }
      if (self->reader_ != nullptr && self->reader_->try_claim()) {
        wake = std::exchange(self->reader_, nullptr);
      }
    }
    if (wake != nullptr) wake->wake();
  }

  // eof_or_reset: UV_EOF, or the reset that libuv reported as end of
  // stream: after a partial read, libuv turns POLLHUP into UV_EOF without
  // reading again, so a reset that arrived right behind the last bytes
  // would pass for an orderly close. The socket's pending error tells.
  int eof_or_reset() const noexcept {
    int error = 0;
    socklen_t size = sizeof error;
    if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &size) == 0 && error != 0) {
      return uv_translate_sys_error(error);
    }
    return UV_EOF;
  }

  void stop_reading_locked(uv_stream_t* stream) noexcept {
    if (reading_) uv_read_stop(stream);
    reading_ = false;
  }

  void wake_blocked() noexcept override {
    waiter* wake = nullptr;
    {
      std::lock_guard lock(lock_);
      if (reader_ != nullptr && reader_->try_claim()) wake = std::exchange(reader_, nullptr);
    }
    if (wake != nullptr) wake->wake();
  }

  uv_tcp_t handle_{};
  endpoint remote_;  // written in set_up, before publication

  // Guarded by lock_.
  std::unique_ptr<char[]> buffer_;
  std::size_t capacity_ = 0;
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
  int read_status_ = 0;       // UV_EOF or an error once reading ended
  waiter* reader_ = nullptr;  // the parked reader
  bool reading_ = false;      // uv_read_start in force (the loop changes it)
  bool resume_queued_ = false;
  owned_request<tcp_conn> resume_{this, resume_reading};  // restarts reading; one in flight
};

namespace {

// delete_conn_on_close: a close callback for connections never handed out.
void delete_conn_on_close(uv_handle_t* h) {
  delete static_cast<tcp_conn*>(static_cast<socket_base*>(h->data));
}

}  // namespace

class tcp_acceptor final : public socket_base {
 public:
  explicit tcp_acceptor(event_loop& loop) noexcept
      : socket_base(reinterpret_cast<uv_handle_t*>(&poll_), loop) {
    retry_.fire = retry_accepting;
    retry_.owner = this;
  }

  const endpoint& local() const noexcept { return local_; }

  // listen: on the loop: opens the listening socket and starts watching it.
  // Returns a libuv status.
  int listen(uv_loop_t* loop, const endpoint& at, int backlog) noexcept {
    const int fd = open_listening_socket(at, backlog);
    if (fd < 0) return fd;
    const int rc = uv_poll_init_socket(loop, &poll_, fd);
    if (rc != 0) {
      ::close(fd);
      return rc;
    }
    fd_ = fd;  // closed in on_handle_closed from here on
    initialized();
    sockaddr_in6 bound{};
    socklen_t size = sizeof bound;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &size) != 0) {
      return uv_translate_sys_error(errno);
    }
    local_ = endpoint(&bound, size);
    name_ = local_.to_string();
    return uv_poll_start(&poll_, UV_READABLE, on_readable);
  }

  tcp_conn* accept(time_point deadline) {
    std::unique_lock lock(lock_);
    for (;;) {
      if (closed_.load(std::memory_order_relaxed)) {
        lock.unlock();
        throw net_error(std::make_error_code(std::errc::bad_file_descriptor),
                        "accept " + name_ + ": use of closed listener");
      }
      if (tcp_conn* c = pop_locked()) {
        const bool resume = paused_ && !resume_queued_;
        if (resume) resume_queued_ = true;
        lock.unlock();
        if (resume) loop().submit(&resume_);
        return c;
      }
      if (accept_error_ != 0) {
        const int error = std::exchange(accept_error_, 0);
        lock.unlock();
        throw_net_error("accept", name_, uv_translate_sys_error(error));
      }
      acceptor_node node;
      node.next = acceptors_;
      acceptors_ = &node;
      lock.release();
      const bool woken = node.parked.park_until(lock_, deadline);
      lock = std::unique_lock(lock_);
      if (!woken) {
        unlink_locked(&node);
        lock.unlock();
        throw_net_error("accept", name_, UV_ETIMEDOUT);
      }
    }
  }

 private:
  struct acceptor_node {
    waiter parked;
    acceptor_node* next = nullptr;
  };
  struct queued {
    tcp_conn* conn;
    queued* next;
  };
  struct retry_timer : timer_entry {
    tcp_acceptor* owner = nullptr;
  };

  // open_listening_socket: a nonblocking socket bound to `at` and listening
  // (SO_REUSEADDR; IPv6 only for an IPv6 address), or a libuv status.
  static int open_listening_socket(const endpoint& at, int backlog) noexcept {
    const int fd =
        ::socket(at.is_v6() ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return uv_translate_sys_error(errno);
    const int on = 1;
    int rc = ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (rc == 0 && at.is_v6()) rc = ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    if (rc == 0) {
      rc = ::bind(fd, static_cast<const sockaddr*>(at.native()),
                  static_cast<socklen_t>(at.native_size()));
    }
    if (rc == 0) rc = ::listen(fd, backlog);
    if (rc != 0) {
      const int error = errno;
      ::close(fd);
      return uv_translate_sys_error(error);
    }
    return fd;
  }

  static void on_readable(uv_poll_t* h, int status, int) {
    auto* self = static_cast<tcp_acceptor*>(static_cast<socket_base*>(h->data));
    if (status < 0) {
      self->back_off(-status);
      return;
    }
    self->accept_pending();
  }

  // accept_pending: on the loop: accepts what the kernel holds until it
  // holds no more, the queue is full or accept4 fails for want of a resource.
  void accept_pending() noexcept {
    for (;;) {
      bool full;
      {
        std::lock_guard lock(lock_);
        full = paused_ = queued_count_ >= max_accept_queue;
      }
      if (full) {  // the accept() that makes room submits resume_
        uv_poll_stop(&poll_);
        return;
      }
      const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        retry_delay_ms_ = 0;
        queue_connection(fd);
        continue;
      }
      const int error = errno;
      if (error == EAGAIN || error == EWOULDBLOCK) return;
      if (costs_one_connection(error)) continue;
      back_off(error);  // EMFILE, ENFILE, ENOBUFS, ENOMEM, EPERM (a firewall)
      return;
    }
  }

  // costs_one_connection: accept4 errors that concern one pending connection
  // only: Linux reports a connection's own network errors from accept4
  // (accept(2) asks to retry on them as on EAGAIN).
  static bool costs_one_connection(int error) noexcept {
    switch (error) {
      case EINTR:
      case ECONNABORTED:
      case EPROTO:
      case ENOPROTOOPT:
      case ENETDOWN:
      case ENETUNREACH:
      case EHOSTDOWN:
      case EHOSTUNREACH:
      case ENONET:
      case EOPNOTSUPP:
        return true;
      default:
        return false;
    }
  }

  // queue_connection: on the loop: sets up an accepted socket and queues it
  // for an acceptor.
  void queue_connection(int fd) noexcept {
    auto* conn = new tcp_conn(loop());
    int rc = uv_tcp_init(poll_.loop, conn->handle());
    if (rc != 0) {
      ::close(fd);
      delete conn;
      return;
    }
    conn->initialized();
    rc = uv_tcp_open(conn->handle(), fd);
    if (rc != 0) ::close(fd);  // the handle did not take it
    if (rc == 0) rc = conn->set_up();
    if (rc != 0) {
      uv_close(reinterpret_cast<uv_handle_t*>(conn->handle()), delete_conn_on_close);
      return;
    }
    waiter* wake = nullptr;
    {
      std::lock_guard lock(lock_);
      *queue_tail_ = new queued{conn, nullptr};
      queue_tail_ = &(*queue_tail_)->next;
      ++queued_count_;
      accept_error_ = 0;  // stale: accepting works again
      wake = claim_one_locked();
    }
    if (wake != nullptr) wake->wake();
  }

  // back_off: on the loop: accept4 failed with `error` (EMFILE...): stops
  // watching for a while (5 ms, doubling up to 1 s, as Go's http.Server
  // waits) and hands the error to one accept() call.
  void back_off(int error) noexcept {
    retry_delay_ms_ = retry_delay_ms_ == 0 ? 5 : std::min<std::int64_t>(2 * retry_delay_ms_, 1000);
    uv_poll_stop(&poll_);
    backing_off_ = true;
    retry_.deadline_ns = steady_now_ns() + retry_delay_ms_ * 1'000'000;
    loop().add_timer(&retry_);
    waiter* wake = nullptr;
    {
      std::lock_guard lock(lock_);
      accept_error_ = error;
      wake = claim_one_locked();
    }
    if (wake != nullptr) wake->wake();
  }

  static void retry_accepting(timer_entry* e) noexcept {
    tcp_acceptor* self = static_cast<retry_timer*>(e)->owner;
    self->backing_off_ = false;
    self->watch();
  }

  static void resume_accepting(loop_request* r, uv_loop_t*) noexcept {
    tcp_acceptor* self = static_cast<owned_request<tcp_acceptor>*>(r)->owner;
    {
      std::lock_guard lock(self->lock_);
      self->resume_queued_ = false;
      if (!self->paused_) return;
      self->paused_ = false;
    }
    self->watch();
  }

  // watch: on the loop: watches the socket again unless it is closed, the
  // queue is full or a back-off runs.
  void watch() noexcept {
    {
      std::lock_guard lock(lock_);
      if (paused_ || closed_.load(std::memory_order_relaxed)) return;
    }
    if (!backing_off_) uv_poll_start(&poll_, UV_READABLE, on_readable);
  }

  tcp_conn* pop_locked() noexcept {
    queued* q = queue_head_;
    if (q == nullptr) return nullptr;
    queue_head_ = q->next;
    if (queue_head_ == nullptr) queue_tail_ = &queue_head_;
    --queued_count_;
    tcp_conn* c = q->conn;
    delete q;
    return c;
  }

  waiter* claim_one_locked() noexcept {
    while (acceptor_node* node = acceptors_) {
      acceptors_ = node->next;
      if (node->parked.try_claim()) return &node->parked;
    }
    return nullptr;
  }

  void unlink_locked(acceptor_node* node) noexcept {
    for (acceptor_node** p = &acceptors_; *p != nullptr; p = &(*p)->next) {
      if (*p == node) {
        *p = node->next;
        return;
      }
    }
  }

  void wake_blocked() noexcept override {
    acceptor_node* claimed = nullptr;
    {
      std::lock_guard lock(lock_);
      while (acceptor_node* node = acceptors_) {
        acceptors_ = node->next;
        if (node->parked.try_claim()) {
          node->next = claimed;
          claimed = node;
        }
      }
    }
    while (claimed != nullptr) {  // a claimed node stays alive until woken
      acceptor_node* node = claimed;
      claimed = node->next;
      node->parked.wake();
    }
  }

  // on_handle_closed: the poll handle is gone: the socket is ours to close,
  // and so are the connections nobody accepted (never published, they need
  // none of socket_base's closing protocol).
  void on_handle_closed() noexcept override {
    event_loop::cancel_timer(&retry_);
    ::close(fd_);
    std::lock_guard lock(lock_);
    while (tcp_conn* c = pop_locked()) {
      uv_close(reinterpret_cast<uv_handle_t*>(c->handle()), delete_conn_on_close);
    }
  }

 private:
  uv_poll_t poll_{};  // watches the listening socket for connections
  endpoint local_;

  // Its loop's owner only.
  retry_timer retry_;                // ends a back-off
  bool backing_off_ = false;         // retry_ is armed; the socket is not watched
  std::int64_t retry_delay_ms_ = 0;  // the last back-off; 0 after a success

  // Guarded by lock_.
  acceptor_node* acceptors_ = nullptr;  // LIFO; fairness is not promised
  queued* queue_head_ = nullptr;
  queued** queue_tail_ = &queue_head_;
  std::size_t queued_count_ = 0;
  int accept_error_ = 0;  // an errno for the next accept() that finds no connection
  bool paused_ = false;   // the queue was full: not watching until accept() resumes
  bool resume_queued_ = false;
  owned_request<tcp_acceptor> resume_{this, resume_accepting};  // resumes accepting
};

namespace {

// connect_op: one connection attempt. The tcp_conn is the loop's
// until the op finishes successfully; on failure it is closed and freed there.
struct connect_op : loop_op {
  connect_op(const endpoint& e, time_point deadline) noexcept : loop_op(start, deadline), to(e) {
    on_timeout = [](loop_op* self) noexcept {  // the connect callback follows, ECANCELED
      uv_close(reinterpret_cast<uv_handle_t*>(static_cast<connect_op*>(self)->conn->handle()),
               delete_conn_on_close);
    };
  }

  static void start(loop_request* r, uv_loop_t* loop) noexcept {
    auto* op = static_cast<connect_op*>(r);
    op->conn = new tcp_conn(event_loop::of(loop));
    int rc = uv_tcp_init(loop, op->conn->handle());
    if (rc != 0) {
      delete std::exchange(op->conn, nullptr);
      op->finish(rc);
      return;
    }
    op->conn->initialized();
    op->request.data = op;
    rc = uv_tcp_connect(&op->request, op->conn->handle(),
                        static_cast<const sockaddr*>(op->to.native()), on_connect);
    if (rc != 0) {
      op->fail(rc);
      return;
    }
    op->arm_deadline();
  }

  static void on_connect(uv_connect_t* req, int status) {
    auto* op = static_cast<connect_op*>(req->data);
    if (status == 0) status = op->conn->set_up();
    if (status != 0) {
      op->fail(status);
      return;
    }
    op->finish(0);
  }

  void fail(int status) noexcept {
    auto* h = reinterpret_cast<uv_handle_t*>(std::exchange(conn, nullptr)->handle());
    if (!uv_is_closing(h)) uv_close(h, delete_conn_on_close);
    finish(status);
  }

  endpoint to;
  tcp_conn* conn = nullptr;
  uv_connect_t request{};
};

struct listen_op : loop_op {
  listen_op(tcp_acceptor* a, const endpoint& e, int b) noexcept
      : loop_op(start, time_point::max(), a->loop()), acceptor(a), at(e), backlog(b) {}
  static void start(loop_request* r, uv_loop_t* loop) noexcept {
    auto* op = static_cast<listen_op*>(r);
    op->finish(op->acceptor->listen(loop, op->at, op->backlog));
  }
  tcp_acceptor* acceptor;
  endpoint at;
  int backlog;
};

[[noreturn]] void throw_not_open(const char* op) {
  throw net_error(std::make_error_code(std::errc::bad_file_descriptor),
                  std::string(op) + ": not connected");
}

}  // namespace
}  // namespace spindle::detail

namespace spindle {

tcp_stream::tcp_stream(tcp_stream&& other) noexcept : conn_(std::exchange(other.conn_, nullptr)) {}

tcp_stream& tcp_stream::operator=(tcp_stream&& other) noexcept {
  tcp_stream old(std::move(other));  // closes what this held when it goes
  std::swap(conn_, old.conn_);
  return *this;
}

tcp_stream::~tcp_stream() {
  if (conn_ == nullptr) return;
  conn_->close();
  delete std::exchange(conn_, nullptr);
}

std::size_t tcp_stream::read(void* data, std::size_t size, io_deadline deadline) {
  if (conn_ == nullptr) detail::throw_not_open("read");
  return conn_->read(data, size, deadline.at());
}

std::size_t tcp_stream::read_full(void* data, std::size_t size, io_deadline deadline) {
  std::size_t done = 0;
  while (done < size) {
    const std::size_t n = read(static_cast<char*>(data) + done, size - done, deadline);
    if (n == 0) break;
    done += n;
  }
  return done;
}

void tcp_stream::read_exact(void* data, std::size_t size, io_deadline deadline) {
  if (read_full(data, size, deadline) != size) {
    throw net_error(detail::uv_error_code(UV_EOF), "read_exact " + conn_->name());
  }
}

void tcp_stream::write_all(const void* data, std::size_t size, io_deadline deadline) {
  if (conn_ == nullptr) detail::throw_not_open("write");
  conn_->write_all(static_cast<const char*>(data), size, deadline.at());
}

void tcp_stream::shutdown() {
  if (conn_ == nullptr) detail::throw_not_open("shutdown");
  conn_->shutdown_write();
}

void tcp_stream::close() noexcept {
  if (conn_ != nullptr) conn_->close();
}

bool tcp_stream::is_open() const noexcept { return conn_ != nullptr && !conn_->is_closed(); }

void tcp_stream::set_no_delay(bool on) {
  if (conn_ == nullptr) detail::throw_not_open("set_no_delay");
  conn_->set_option("set_no_delay", IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
}

void tcp_stream::set_keep_alive(bool on, std::chrono::seconds idle) {
  if (conn_ == nullptr) detail::throw_not_open("set_keep_alive");
  conn_->set_option("set_keep_alive", SOL_SOCKET, SO_KEEPALIVE, on ? 1 : 0);
  if (on) {
    const auto seconds = static_cast<int>(std::max<std::chrono::seconds::rep>(idle.count(), 1));
    conn_->set_option("set_keep_alive", IPPROTO_TCP, TCP_KEEPIDLE, seconds);
  }
}

endpoint tcp_stream::local_address() const {
  if (conn_ == nullptr) detail::throw_not_open("local_address");
  return conn_->local();
}

endpoint tcp_stream::remote_address() const {
  if (conn_ == nullptr) detail::throw_not_open("remote_address");
  return conn_->remote();
}

tcp_stream dial_tcp(const endpoint& to, io_deadline deadline) {
  detail::connect_op op(to, deadline.at());
  const int status = op.wait();
  if (op.timed_out()) detail::throw_net_error("dial", to.to_string(), UV_ETIMEDOUT);
  if (status != 0) detail::throw_net_error("dial", to.to_string(), status);
  return tcp_stream(op.conn);
}

tcp_stream dial_tcp(std::string_view host_port, io_deadline deadline) {
  detail::host_port hp = detail::split_host_port("dial", host_port);
  if (hp.host.empty()) hp.host = "127.0.0.1";
  const std::vector<endpoint> candidates = resolve(hp.host, hp.port, deadline);
  for (std::size_t i = 0;; ++i) {
    try {
      return dial_tcp(candidates[i], deadline);
    } catch (const timeout_error&) {
      throw;
    } catch (const net_error& e) {
      if (i + 1 == candidates.size()) {
        throw net_error(e.code(), "dial " + std::string(host_port));
      }
    }
  }
}

tcp_listener::tcp_listener(tcp_listener&& other) noexcept
    : acceptor_(std::exchange(other.acceptor_, nullptr)) {}

tcp_listener& tcp_listener::operator=(tcp_listener&& other) noexcept {
  tcp_listener old(std::move(other));  // closes what this held when it goes
  std::swap(acceptor_, old.acceptor_);
  return *this;
}

tcp_listener::~tcp_listener() {
  if (acceptor_ == nullptr) return;
  acceptor_->close();
  delete std::exchange(acceptor_, nullptr);
}

tcp_stream tcp_listener::accept(io_deadline deadline) {
  if (acceptor_ == nullptr) detail::throw_not_open("accept");
  return tcp_stream(acceptor_->accept(deadline.at()));
}

endpoint tcp_listener::local_address() const {
  if (acceptor_ == nullptr) detail::throw_not_open("local_address");
  return acceptor_->local();
}

bool tcp_listener::is_open() const noexcept {
  return acceptor_ != nullptr && !acceptor_->is_closed();
}

void tcp_listener::close() noexcept {
  if (acceptor_ != nullptr) acceptor_->close();
}

tcp_listener listen_tcp(const endpoint& at, int backlog) {
  auto* acceptor = new detail::tcp_acceptor(detail::event_loop::current());
  detail::listen_op op(acceptor, at, backlog);
  const int status = op.wait();
  if (status != 0) {
    if (acceptor->is_initialized()) acceptor->close();
    delete acceptor;
    detail::throw_net_error("listen", at.to_string(), status);
  }
  return tcp_listener(acceptor);
}

tcp_listener listen_tcp(std::string_view host_port, int backlog) {
  const detail::host_port hp = detail::split_host_port("listen", host_port);
  endpoint at;
  if (!detail::parse_ip(hp.host, hp.port, at)) {
    detail::throw_invalid_address("listen", host_port, "the host must be a numeric IP address");
  }
  return listen_tcp(at, backlog);
}

}  // namespace spindle
