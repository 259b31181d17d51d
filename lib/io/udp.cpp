// lib/io/udp.cpp: UDP sockets (spindle/net.hpp).
//
// As TCP connections do (tcp.cpp), a udp_endpoint receives all the time:
// libuv receives into the loop's scratch buffer, the receive callback
// copies each datagram into a queue (at most max_queued, then it stops
// receiving until the receiver drains the queue: the kernel's buffer holds,
// and eventually drops, the rest) and wakes the parked receiver. recv_from()
// takes the oldest datagram under the lock, parking only while the queue is
// empty. send_to() calls sendto() on the descriptor directly (socket.hpp's
// fd guard) and hands the datagram to uv_udp_send only when the kernel's
// buffer is full; a deadline passing then closes the socket, as for TCP
// writes, because libuv cannot withdraw a queued send.
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <utility>

#include "io/address.hpp"
#include "io/socket.hpp"

namespace spindle::detail {
namespace {

constexpr std::size_t max_queued = 64;

struct datagram {
  datagram* next = nullptr;
  endpoint from;
  std::size_t size = 0;
  std::unique_ptr<char[]> bytes;
};

[[noreturn]] void throw_closed(const char* op, const std::string& name) {
  throw net_error(std::make_error_code(std::errc::bad_file_descriptor),
                  std::string(op) + " " + name + ": use of closed socket");
}

}  // namespace

class udp_endpoint final : public socket_base {
 public:
  explicit udp_endpoint(event_loop& loop) noexcept
      : socket_base(reinterpret_cast<uv_handle_t*>(&handle_), loop) {}
  ~udp_endpoint() override {
    while (datagram* d = head_) {
      head_ = d->next;
      delete d;
    }
  }

  const endpoint& local() const noexcept { return local_; }

  // bind: on the loop.
  int bind(uv_loop_t* loop, const endpoint& at) noexcept {
    int rc = uv_udp_init(loop, &handle_);
    if (rc != 0) return rc;
    initialized();
    rc = uv_udp_bind(&handle_, static_cast<const sockaddr*>(at.native()),
                     at.is_v6() ? UV_UDP_IPV6ONLY : 0);
    if (rc != 0) return rc;
    sockaddr_in6 bound{};
    int size = sizeof bound;
    rc = uv_udp_getsockname(&handle_, reinterpret_cast<sockaddr*>(&bound), &size);
    if (rc != 0) return rc;
    local_ = endpoint(&bound, static_cast<std::size_t>(size));
    name_ = local_.to_string();
    uv_os_fd_t fd;
    rc = uv_fileno(reinterpret_cast<uv_handle_t*>(&handle_), &fd);
    if (rc != 0) return rc;
    fd_ = fd;
    receiving_ = true;
    return uv_udp_recv_start(&handle_, on_alloc, on_recv);
  }

  std::size_t recv_from(void* data, std::size_t size, endpoint& from, time_point deadline) {
    std::unique_lock lock(lock_);
    for (;;) {
      if (closed_.load(std::memory_order_relaxed)) {
        lock.unlock();
        throw_closed("recv_from", name_);
      }
      if (datagram* d = head_) {
        head_ = d->next;
        if (head_ == nullptr) tail_ = &head_;
        --queued_;
        const bool resume = !receiving_ && !resume_queued_;
        if (resume) resume_queued_ = true;
        lock.unlock();
        if (resume) loop().submit(&resume_);
        std::unique_ptr<datagram> owned(d);
        const std::size_t n = std::min(size, d->size);
        std::memcpy(data, d->bytes.get(), n);
        from = d->from;
        return n;
      }
      if (error_ != 0) {
        const int status = std::exchange(error_, 0);
        lock.unlock();
        throw_net_error("recv_from", name_, status);
      }
      waiter w;
      receiver_ = &w;
      lock.release();
      const bool woken = w.park_until(lock_, deadline);
      lock = std::unique_lock(lock_);
      if (!woken) {
        if (receiver_ == &w) receiver_ = nullptr;
        lock.unlock();
        throw_net_error("recv_from", name_, UV_ETIMEDOUT);
      }
    }
  }

  void send_to(const void* data, std::size_t size, const endpoint& to, time_point deadline) {
    for (;;) {
      if (!acquire_fd()) throw_closed("send_to", to.to_string());
      const ssize_t sent = ::sendto(fd_, data, size, MSG_DONTWAIT | MSG_NOSIGNAL,
                                    static_cast<const sockaddr*>(to.native()),
                                    static_cast<socklen_t>(to.native_size()));
      const int error = errno;
      release_fd();
      if (sent >= 0) return;
      if (error == EINTR) continue;
      if (error != EAGAIN && error != EWOULDBLOCK) {
        throw_net_error("send_to", to.to_string(), uv_translate_sys_error(error));
      }
      send_op op(this, data, size, to, deadline);
      const int status = op.wait();
      if (op.timed_out()) throw_net_error("send_to", to.to_string(), UV_ETIMEDOUT);
      if (status == UV_ECANCELED) throw_closed("send_to", to.to_string());
      if (status != 0) throw_net_error("send_to", to.to_string(), status);
      return;
    }
  }

 private:
  struct send_op : loop_op {
    send_op(udp_endpoint* s, const void* data, std::size_t size, const endpoint& e,
            time_point deadline) noexcept
        : loop_op(start, deadline, s->loop()), socket(s), to(e) {
      buffer =
          uv_buf_init(static_cast<char*>(const_cast<void*>(data)), static_cast<unsigned>(size));
      on_timeout = [](loop_op* self) noexcept {
        static_cast<send_op*>(self)->socket->close_on_loop();  // cancels the send
      };
    }
    static void start(loop_request* r, uv_loop_t*) noexcept {
      auto* op = static_cast<send_op*>(r);
      if (op->socket->is_closed()) {
        op->finish(UV_ECANCELED);
        return;
      }
      op->request.data = op;
      const int rc = uv_udp_send(
          &op->request, &op->socket->handle_, &op->buffer, 1,
          static_cast<const sockaddr*>(op->to.native()),
          [](uv_udp_send_t* req, int status) { static_cast<send_op*>(req->data)->finish(status); });
      if (rc != 0) {
        op->finish(rc);
        return;
      }
      op->arm_deadline();
    }
    udp_endpoint* socket;
    endpoint to;
    uv_udp_send_t request{};
    uv_buf_t buffer{};
  };

  struct resume_request : loop_request {
    explicit resume_request(udp_endpoint* s) noexcept : socket(s) { run = resume_receiving; }
    udp_endpoint* socket;
  };

  static void resume_receiving(loop_request* r, uv_loop_t*) noexcept {
    udp_endpoint* self = static_cast<resume_request*>(r)->socket;
    {
      std::lock_guard lock(self->lock_);
      self->resume_queued_ = false;
      if (self->closed_.load(std::memory_order_relaxed) || self->receiving_) return;
      self->receiving_ = true;
    }
    uv_udp_recv_start(&self->handle_, on_alloc, on_recv);
  }

  static void on_alloc(uv_handle_t* h, std::size_t, uv_buf_t* out) {
    *out = event_loop::of(h->loop).scratch_buffer();
  }

  // on_recv: on the loop: queues the datagram and wakes the receiver.
  static void on_recv(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buf, const sockaddr* addr,
                      unsigned) {
    if (nread == 0 && addr == nullptr) return;  // nothing more to read now
    auto* self = static_cast<udp_endpoint*>(static_cast<socket_base*>(handle->data));
    datagram* d = nullptr;
    if (nread >= 0) {
      d = new datagram;
      d->from =
          endpoint(addr, addr->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
      d->size = static_cast<std::size_t>(nread);
      d->bytes.reset(new char[d->size + 1]);
      std::memcpy(d->bytes.get(), buf->base, d->size);
    }
    waiter* wake = nullptr;
    {
      std::lock_guard lock(self->lock_);
      if (d != nullptr) {
        *self->tail_ = d;
        self->tail_ = &d->next;
        if (++self->queued_ == max_queued) {
          uv_udp_recv_stop(handle);
          self->receiving_ = false;
        }
      } else {
        self->error_ = static_cast<int>(nread);
      }
      if (self->receiver_ != nullptr && self->receiver_->try_claim()) {
        wake = std::exchange(self->receiver_, nullptr);
      }
    }
    if (wake != nullptr) wake->wake();
  }

  void wake_blocked() noexcept override {
    waiter* wake = nullptr;
    {
      std::lock_guard lock(lock_);
      if (receiver_ != nullptr && receiver_->try_claim()) wake = std::exchange(receiver_, nullptr);
    }
    if (wake != nullptr) wake->wake();
  }

  uv_udp_t handle_{};
  endpoint local_;  // written in bind, before publication

  // Guarded by lock_.
  datagram* head_ = nullptr;
  datagram** tail_ = &head_;
  std::size_t queued_ = 0;
  int error_ = 0;  // a receive error, reported once
  waiter* receiver_ = nullptr;
  bool receiving_ = false;
  bool resume_queued_ = false;
  resume_request resume_{this};
};

namespace {

struct bind_op : loop_op {
  bind_op(udp_endpoint* s, const endpoint& e) noexcept
      : loop_op(start, time_point::max(), s->loop()), socket(s), at(e) {}
  static void start(loop_request* r, uv_loop_t* loop) noexcept {
    auto* op = static_cast<bind_op*>(r);
    op->finish(op->socket->bind(loop, op->at));
  }
  udp_endpoint* socket;
  endpoint at;
};

[[noreturn]] void throw_not_open(const char* op) {
  throw net_error(std::make_error_code(std::errc::bad_file_descriptor),
                  std::string(op) + ": socket not open");
}

}  // namespace
}  // namespace spindle::detail

namespace spindle {

udp_socket::udp_socket(udp_socket&& other) noexcept
    : socket_(std::exchange(other.socket_, nullptr)) {}

udp_socket& udp_socket::operator=(udp_socket&& other) noexcept {
  udp_socket old(std::move(other));  // closes what this held when it goes
  std::swap(socket_, old.socket_);
  return *this;
}

udp_socket::~udp_socket() {
  if (socket_ == nullptr) return;
  socket_->close();
  delete std::exchange(socket_, nullptr);
}

udp_socket udp_socket::bind(const endpoint& at) {
  auto* socket = new detail::udp_endpoint(detail::event_loop::current());
  detail::bind_op op(socket, at);
  const int status = op.wait();
  if (status != 0) {
    if (socket->is_initialized()) socket->close();
    delete socket;
    detail::throw_net_error("bind", at.to_string(), status);
  }
  return udp_socket(socket);
}

udp_socket udp_socket::bind(std::string_view host_port) {
  const detail::host_port hp = detail::split_host_port("bind", host_port);
  endpoint at;
  if (!detail::parse_ip(hp.host, hp.port, at)) {
    detail::throw_invalid_address("bind", host_port, "the host must be a numeric IP address");
  }
  return bind(at);
}

void udp_socket::send_to(const void* data, std::size_t size, const endpoint& to,
                         io_deadline deadline) {
  if (socket_ == nullptr) detail::throw_not_open("send_to");
  socket_->send_to(data, size, to, deadline.at());
}

std::size_t udp_socket::recv_from(void* data, std::size_t size, endpoint& from,
                                  io_deadline deadline) {
  if (socket_ == nullptr) detail::throw_not_open("recv_from");
  return socket_->recv_from(data, size, from, deadline.at());
}

endpoint udp_socket::local_address() const {
  if (socket_ == nullptr) detail::throw_not_open("local_address");
  return socket_->local();
}

bool udp_socket::is_open() const noexcept { return socket_ != nullptr && !socket_->is_closed(); }

void udp_socket::close() noexcept {
  if (socket_ != nullptr) socket_->close();
}

}  // namespace spindle
