// spindle/net.hpp: TCP, UDP and name resolution for fibers, as in Go's net package.
//
//   spindle::tcp_listener ln = spindle::listen_tcp("127.0.0.1:0");   // net.Listen
//   std::printf("listening on %s\n", ln.local_address().to_string().c_str());
//   spindle::go([&] {
//     for (;;) {
//       spindle::tcp_stream c = ln.accept();                          // ln.Accept()
//       spindle::go([c = std::move(c)]() mutable {
//         char buf[4096];
//         while (std::size_t n = c.read(buf, sizeof buf, 30s)) c.write_all(buf, n);
//       });
//     }
//   });
//   spindle::tcp_stream s = spindle::dial_tcp("localhost:7007", 2s);  // net.DialTimeout
//
// Every call that can block parks the calling fiber (its worker runs other
// fibers meanwhile) and blocks a plain thread; each takes an io_deadline last,
// a timeout from the call (`5s`) or a time point, by default none.
//
// Errors. Failures throw net_error, a std::system_error whose code() is the
// errno (std::generic_category(), so `e.code() == std::errc::connection_refused`
// works) or, for name resolution, a libuv code, and whose what() names the
// operation and the address: "dial 127.0.0.1:1: Connection refused". A
// deadline that passes throws timeout_error (code() == std::errc::timed_out;
// Go's os.ErrDeadlineExceeded). An invalid address or port throws net_error
// with std::errc::invalid_argument before anything is attempted. End of stream
// is not an error: read() returns 0.
//
// Across fibers. One tcp_stream may have one reader and one writer at a time
// (two fibers, one reading and one writing, is the usual full-duplex use);
// two concurrent readers or two concurrent writers are not allowed. close()
// may be called from any fiber at any time: readers, writers and acceptors
// blocked on the object wake with net_error (std::errc::bad_file_descriptor,
// "use of closed connection"). Destroying an object while another fiber still
// uses it is undefined behaviour, as for any C++ object. A listener may have
// any number of concurrent acceptors; a udp_socket one receiver and one sender.
//
// How it works (lib/io/tcp.cpp has the details): the sockets are libuv
// handles owned by the event loop of the processor that created them.
// Each connection keeps reading into a 64 KiB buffer as long as it has
// room, so read() usually finds its data already there and returns without
// a round trip to the loop; writes go straight to the socket and fall back
// to the loop only when the kernel's buffer is full.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "spindle/detail/deadline.hpp"

namespace spindle {

// io_deadline: when a blocking I/O call gives up. Built implicitly from a
// duration (a timeout counted from the call) or from a time point of any
// clock; the default never expires.
//   s.read(buf, n, 500ms);
//   s.read(buf, n, std::chrono::steady_clock::now() + 2s);
class io_deadline {
 public:
  io_deadline() noexcept = default;
  template <class Rep, class Period>
  io_deadline(const std::chrono::duration<Rep, Period>& timeout) noexcept  // NOLINT: implicit
      : at_(detail::deadline_after(timeout)) {}
  template <class Clock, class Duration>
  io_deadline(const std::chrono::time_point<Clock, Duration>& t) noexcept  // NOLINT: implicit
      : at_(detail::deadline_at(t)) {}

  // at: the deadline on the steady clock (time_point::max() when none).
  std::chrono::steady_clock::time_point at() const noexcept { return at_; }
  bool is_set() const noexcept { return at_ != detail::no_deadline; }

 private:
  std::chrono::steady_clock::time_point at_ = detail::no_deadline;
};

// net_error: a network operation failed; what() names it and its address.
class net_error : public std::system_error {
 public:
  using std::system_error::system_error;
};

// timeout_error: a network operation's deadline passed (code() is
// std::errc::timed_out).
class timeout_error : public net_error {
 public:
  using net_error::net_error;
};

// endpoint: an IPv4 or IPv6 address and a port (a sockaddr_in/_in6 inside).
//   endpoint e = endpoint::parse("[::1]:8080");
//   e.host() == "::1"; e.port() == 8080; e.to_string() == "[::1]:8080"
class endpoint {
 public:
  // endpoint: the unspecified IPv4 address, port 0.
  endpoint() noexcept;
  // endpoint: a copy of a sockaddr_in or sockaddr_in6 (`size` bytes).
  // Throws net_error (invalid_argument) for another family.
  endpoint(const void* sockaddr_data, std::size_t size);

  // parse: a numeric "host:port" ("127.0.0.1:80", "[::1]:80", ":80" meaning
  // every IPv4 interface). Throws net_error (invalid_argument) naming the
  // text otherwise. Does not resolve names: see resolve().
  static endpoint parse(std::string_view host_port);
  // from_ip: a numeric host ("10.0.0.1", "::1") and a port. Throws net_error
  // (invalid_argument).
  static endpoint from_ip(std::string_view ip, std::uint16_t port);

  bool is_v6() const noexcept;
  std::uint16_t port() const noexcept;
  // host: the numeric address, without brackets ("::1").
  std::string host() const;
  // to_string: "127.0.0.1:80" or "[::1]:80".
  std::string to_string() const;
  // native, native_size: the sockaddr inside, for system calls.
  const void* native() const noexcept { return storage_; }
  std::size_t native_size() const noexcept;

  friend bool operator==(const endpoint& a, const endpoint& b) noexcept;

 private:
  alignas(8) unsigned char storage_[28];  // sizeof(sockaddr_in6)
};

// resolve: the addresses of `host` (a name or a numeric address), with `port`
// filled in, IPv4 and IPv6 as the system's resolver orders them
// (getaddrinfo on libuv's thread pool). Parks the fiber; blocks a thread.
// Throws net_error ("resolve NAME: ...") when the name is unknown.
std::vector<endpoint> resolve(std::string_view host, std::uint16_t port = 0,
                              io_deadline deadline = {});

namespace detail {
class tcp_conn;
class tcp_acceptor;
class udp_endpoint;
}  // namespace detail

// tcp_stream: a TCP connection (Go's net.TCPConn). Move-only; destroying it
// closes it. Obtained from dial_tcp() or tcp_listener::accept().
class tcp_stream {
 public:
  // tcp_stream: not connected; every operation but close() throws net_error.
  tcp_stream() noexcept = default;
  explicit tcp_stream(detail::tcp_conn* conn) noexcept : conn_(conn) {}
  tcp_stream(tcp_stream&& other) noexcept;
  tcp_stream& operator=(tcp_stream&& other) noexcept;
  ~tcp_stream();

  // read: reads up to `size` bytes into `data`; returns how many, at least
  // one, or 0 at end of stream (the peer shut down or closed its side). Bytes
  // that arrived before an error or end of stream are returned first. Parks
  // the fiber (blocks a thread) only while nothing has arrived. Throws
  // net_error (a reset gives std::errc::connection_reset), timeout_error.
  std::size_t read(void* data, std::size_t size, io_deadline deadline = {});
  // read_full: reads until `size` bytes arrived or the stream ended; returns
  // the count (less than size only at end of stream). Blocks like read().
  std::size_t read_full(void* data, std::size_t size, io_deadline deadline = {});
  // read_exact: reads exactly `size` bytes; a stream ending first throws
  // net_error ("unexpected end of stream", code UV_EOF in uv_category()).
  void read_exact(void* data, std::size_t size, io_deadline deadline = {});
  // write_all: writes every byte, or throws (net_error, timeout_error). Does
  // not block while the kernel's socket buffer has room; otherwise parks the
  // fiber (blocks a thread) until it has. A write whose deadline passes
  // while bytes are still queued closes the stream: the bytes already handed
  // to it cannot be taken back without breaking the byte stream.
  void write_all(const void* data, std::size_t size, io_deadline deadline = {});
  void write_all(std::string_view bytes, io_deadline deadline = {}) {
    write_all(bytes.data(), bytes.size(), deadline);
  }
  // shutdown: half-close; the peer reads end of stream once it has read
  // everything written before. Reading still works. Does not block.
  void shutdown();
  // close: closes the connection and wakes this stream's blocked reader and
  // writer with net_error. Idempotent. Parks the fiber (blocks a thread)
  // briefly, until the loop has released the socket.
  void close() noexcept;

  // set_no_delay: disables (true) or enables Nagle's algorithm. Does not block.
  void set_no_delay(bool on);
  // set_keep_alive: enables TCP keep-alive probes after `idle` of silence
  // (whole seconds, at least one), or disables them. Does not block.
  void set_keep_alive(bool on, std::chrono::seconds idle = std::chrono::seconds(15));
  endpoint local_address() const;
  endpoint remote_address() const;
  // is_open: connected and not closed.
  bool is_open() const noexcept;

 private:
  detail::tcp_conn* conn_ = nullptr;
};

// dial_tcp: connects to "host:port" (host a name, resolved first, or a
// numeric address; IPv6 in brackets), trying each resolved address in turn.
// Parks the fiber (blocks a thread). Throws net_error ("dial HOST:PORT:
// Connection refused"), timeout_error.
tcp_stream dial_tcp(std::string_view host_port, io_deadline deadline = {});
// dial_tcp: connects to `to`.
tcp_stream dial_tcp(const endpoint& to, io_deadline deadline = {});

// tcp_listener: a listening TCP socket (Go's net.TCPListener). Move-only;
// destroying it closes it. Connections are accepted as they arrive (up to a
// small queue, then the kernel's backlog holds them) and started reading.
class tcp_listener {
 public:
  tcp_listener() noexcept = default;
  explicit tcp_listener(detail::tcp_acceptor* acceptor) noexcept : acceptor_(acceptor) {}
  tcp_listener(tcp_listener&& other) noexcept;
  tcp_listener& operator=(tcp_listener&& other) noexcept;
  ~tcp_listener();

  // accept: the next incoming connection. Parks the fiber (blocks a thread)
  // until one arrives. Throws net_error once the listener is closed (also
  // when closed while waiting), timeout_error.
  tcp_stream accept(io_deadline deadline = {});
  // local_address: the bound address, with the port the system chose for port 0.
  endpoint local_address() const;
  // close: stops listening, closes the connections not yet accepted and
  // wakes blocked acceptors with net_error. Idempotent. Parks the fiber
  // (blocks a thread) briefly, until the loop released the socket.
  void close() noexcept;
  // is_open: listening and not closed.
  bool is_open() const noexcept;

 private:
  detail::tcp_acceptor* acceptor_ = nullptr;
};

// listen_tcp: listens on "host:port" (numeric host, "[::1]:0" for IPv6,
// ":port" for every IPv4 interface; port 0 picks a free port, see
// local_address()). SO_REUSEADDR is set; an IPv6 listener accepts IPv6 only.
// Parks the fiber (blocks a thread) briefly. Throws net_error ("listen
// 127.0.0.1:80: Permission denied").
tcp_listener listen_tcp(std::string_view host_port, int backlog = 511);
tcp_listener listen_tcp(const endpoint& at, int backlog = 511);

// udp_socket: a bound UDP socket (Go's net.UDPConn). Move-only; destroying
// it closes it. Datagrams arriving while nobody receives wait in a queue of
// up to 64; more are left to the kernel's buffer (and dropped by it when full).
class udp_socket {
 public:
  udp_socket() noexcept = default;
  explicit udp_socket(detail::udp_endpoint* s) noexcept : socket_(s) {}
  udp_socket(udp_socket&& other) noexcept;
  udp_socket& operator=(udp_socket&& other) noexcept;
  ~udp_socket();

  // bind: a socket bound to "host:port" (port 0 picks one). Parks briefly.
  // Throws net_error.
  static udp_socket bind(std::string_view host_port);
  static udp_socket bind(const endpoint& at);

  // send_to: sends one datagram of `size` bytes to `to`. Does not block
  // unless the kernel's buffer is full. Throws net_error, timeout_error.
  void send_to(const void* data, std::size_t size, const endpoint& to, io_deadline deadline = {});
  // recv_from: receives one datagram into `data` (a longer one is
  // truncated to `size`); returns its length and sets `from`. Parks the
  // fiber (blocks a thread) until one arrives. Throws net_error,
  // timeout_error, net_error once closed.
  std::size_t recv_from(void* data, std::size_t size, endpoint& from, io_deadline deadline = {});
  endpoint local_address() const;
  // close: as tcp_stream::close.
  void close() noexcept;
  // is_open: bound and not closed.
  bool is_open() const noexcept;

 private:
  detail::udp_endpoint* socket_ = nullptr;
};

// uv_category: the error category of libuv codes that are not errno values
// (name resolution failures, end of stream).
const std::error_category& uv_category() noexcept;

}  // namespace spindle
