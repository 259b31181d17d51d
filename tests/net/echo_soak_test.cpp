// tests/net/echo_soak_test.cpp: an echo server under rough clients for a
// few minutes (suite 'slow'; SPINDLE_SOAK_SECONDS sets the length, 120 by
// default).
//
// The server is the echo_server sample's logic on spindle fibers; the clients
// are plain threads with raw sockets, each cycling through four kinds of
// connection:
//   polite      sends a message of up to 256 KiB, reads it back, closes;
//   reset       sends a message and closes at once with SO_LINGER 0, so the
//               server meets ECONNRESET/EPIPE in the middle of its echo;
//   half-open   sends, shuts its write side down and never reads; it closes
//               (with unread bytes: a reset) a little later, while the
//               server may be blocked writing to it;
//   slow        a 2 KiB receive buffer, reading 512 bytes per millisecond,
//               so the server's writes back up into the loop's write queue.
// Polite and slow clients must get every byte back intact. (A connection
// reset before its loop set it up is dropped there, unseen by the
// server's fibers.) At the end, once
// the clients closed everything: the server's connections and fibers are
// back to zero, the process holds the descriptors it held before, and its
// resident memory grew by less than 32 MiB over what it was once the load
// was established (not checked under ASan or TSan, whose quarantine and
// shadow memory grow by design).
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <dirent.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <random>
#include <spindle/spindle.hpp>
#include <string>
#include <thread>
#include <vector>

#include "wait.hpp"

using namespace std::chrono_literals;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool memory_sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool memory_sanitized = true;
#else
constexpr bool memory_sanitized = false;
#endif
#else
constexpr bool memory_sanitized = false;
#endif

namespace {

using clock_type = std::chrono::steady_clock;

int soak_seconds() {
  const char* text = std::getenv("SPINDLE_SOAK_SECONDS");
  return text != nullptr && std::atoi(text) > 0 ? std::atoi(text) : 120;
}

int open_fd_count() {
  int n = 0;
  DIR* dir = opendir("/proc/self/fd");
  REQUIRE(dir != nullptr);
  while (dirent* e = readdir(dir)) n += e->d_name[0] != '.';
  closedir(dir);
  return n - 1;  // the directory's own descriptor
}

std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

// echo_server: samples/echo_server.cpp's serve() and echo(), counting the
// connections it holds.
class echo_server {
 public:
  echo_server() : listener_(spindle::listen_tcp("127.0.0.1:0")) {
    acceptor_ = spindle::go([this] { serve(); });
  }
  ~echo_server() {
    listener_.close();
    acceptor_.join();
  }
  spindle::endpoint address() const { return listener_.local_address(); }
  int open_connections() const { return open_.load(); }
  long served() const { return served_.load(); }

 private:
  void serve() {
    for (;;) {
      try {
        spindle::go([this](spindle::tcp_stream c) { echo(std::move(c)); }, listener_.accept());
      } catch (const std::system_error&) {
        if (!listener_.is_open()) return;
        spindle::sleep_for(5ms);
      }
    }
  }
  void echo(spindle::tcp_stream conn) {
    open_.fetch_add(1);
    served_.fetch_add(1);
    char buf[16 * 1024];
    try {
      while (std::size_t n = conn.read(buf, sizeof buf)) conn.write_all(buf, n);
    } catch (const spindle::net_error&) {
    }
    conn.close();
    open_.fetch_sub(1);
  }

  spindle::tcp_listener listener_;
  spindle::handle<void> acceptor_;
  std::atomic<int> open_{0};
  std::atomic<long> served_{0};
};

// client_socket: a blocking socket connected to `to`; sends and receives
// give up after 10 s. `receive_buffer` > 0 shrinks SO_RCVBUF first.
int client_socket(const spindle::endpoint& to, int receive_buffer = 0) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const timeval limit{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  if (receive_buffer > 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  }
  if (::connect(fd, static_cast<const sockaddr*>(to.native()),
                static_cast<socklen_t>(to.native_size())) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void close_with_reset(int fd) {
  const linger abort{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  ::close(fd);
}

bool send_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// client_tally: what the client threads saw.
struct client_tally {
  std::atomic<long> polite{0}, reset{0}, half_open{0}, slow{0};
  std::atomic<long> bytes_echoed{0};
  std::atomic<long> failures{0};  // a polite or slow client that did not get its bytes back
};

class client {
 public:
  client(const spindle::endpoint& to, client_tally& tally, unsigned seed)
      : to_(to), tally_(tally), random_(seed) {
    message_.resize(256 * 1024);
    for (std::size_t i = 0; i < message_.size(); ++i) {
      message_[i] = static_cast<char>((i * 131 + seed) % 251);
    }
  }

  void run_until(clock_type::time_point end) {
    for (unsigned round = 0; clock_type::now() < end; ++round) {
      switch (round % 4) {
        case 0:
          polite();
          break;
        case 1:
          reset();
          break;
        case 2:
          half_open();
          break;
        case 3:
          slow();
          break;
      }
      close_old_half_open(clock_type::now() - 200ms);
    }
    close_old_half_open(clock_type::time_point::max());
  }

 private:
  std::size_t message_size() {
    return std::uniform_int_distribution<std::size_t>(1, message_.size())(random_);
  }

  void polite() {
    const int fd = client_socket(to_);
    const std::size_t size = message_size();
    const bool ok = fd >= 0 && exchange(fd, size, 64 * 1024, false);
    if (fd >= 0) ::close(fd);
    count(ok, tally_.polite, size);
  }

  void reset() {
    const int fd = client_socket(to_);
    if (fd < 0) {
      tally_.failures.fetch_add(1);
      return;
    }
    send_all(fd, message_.data(), message_size());
    close_with_reset(fd);
    tally_.reset.fetch_add(1);
  }

  void half_open() {
    const int fd = client_socket(to_);
    if (fd < 0) {
      tally_.failures.fetch_add(1);
      return;
    }
    send_all(fd, message_.data(), std::min<std::size_t>(message_size(), 64 * 1024));
    shutdown(fd, SHUT_WR);
    half_open_.push_back({fd, clock_type::now()});
    tally_.half_open.fetch_add(1);
  }

  void close_old_half_open(clock_type::time_point before) {
    while (!half_open_.empty() && half_open_.front().since < before) {
      ::close(half_open_.front().fd);
      half_open_.pop_front();
    }
  }

  // slow: sends 64 KiB and reads the echo back 512 bytes per millisecond.
  void slow() {
    const int fd = client_socket(to_, 2048);
    constexpr std::size_t size = 64 * 1024;
    const bool ok = fd >= 0 && exchange(fd, size, 512, true);
    if (fd >= 0) ::close(fd);
    count(ok, tally_.slow, size);
  }

  // exchange: sends the first `size` bytes of the message while reading the
  // echo back, at most `chunk` bytes at a time (pausing 1 ms after each read
  // if `pause`); whether every byte came back intact. Gives up after 10 s
  // without progress.
  bool exchange(int fd, std::size_t size, std::size_t chunk, bool pause) {
    std::string back(size, '\0');
    std::size_t sent = 0, got = 0;
    while (got < size) {
      pollfd p{fd, static_cast<short>(POLLIN | (sent < size ? POLLOUT : 0)), 0};
      if (::poll(&p, 1, 10'000) <= 0) return false;
      if ((p.revents & POLLOUT) != 0) {
        const ssize_t n =
            ::send(fd, message_.data() + sent, std::min<std::size_t>(16384, size - sent),
                   MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0 && errno != EAGAIN) return false;
        if (n > 0) sent += static_cast<std::size_t>(n);
      }
      if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        const ssize_t n = ::recv(fd, back.data() + got, std::min(chunk, size - got), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN)) return false;
        if (n > 0) got += static_cast<std::size_t>(n);
        if (pause) std::this_thread::sleep_for(1ms);  // the slowness under test
      }
    }
    return back.compare(0, size, message_, 0, size) == 0;
  }

  void count(bool ok, std::atomic<long>& kind, std::size_t size) {
    if (!ok) {
      tally_.failures.fetch_add(1);
      return;
    }
    kind.fetch_add(1);
    tally_.bytes_echoed.fetch_add(static_cast<long>(size));
  }

  struct held {
    int fd;
    clock_type::time_point since;
  };

  spindle::endpoint to_;
  client_tally& tally_;
  std::mt19937 random_;
  std::string message_;
  std::deque<held> half_open_;
};

}  // namespace

TEST_CASE("soak: an echo server under resets, half-open and slow clients leaks nothing") {
  constexpr std::size_t rss_growth_bound = 32u << 20;
  constexpr int client_threads = 8;
  const auto length = std::chrono::seconds(soak_seconds());
  spindle::go([] {}).join();  // the runtime is up
  const std::uint64_t fibers_before = spindle::runtime_stats().fibers_alive;
  {  // the event loop is up too: its descriptors stay open
    echo_server warm_up;
    const int fd = client_socket(warm_up.address());
    char byte = 'x';
    CHECK(send_all(fd, &byte, 1));
    CHECK(::recv(fd, &byte, 1, 0) == 1);
    ::close(fd);
    CHECK(spindle_test::wait_until([&] { return warm_up.open_connections() == 0; }, 30s));
  }
  const int fds_before = open_fd_count();
  client_tally tally;
  std::size_t rss_warm = 0;
  long served = 0;
  {
    echo_server server;
    const auto start = clock_type::now();
    std::vector<std::thread> clients;
    for (int i = 0; i < client_threads; ++i) {
      clients.emplace_back([&, i] {
        client(server.address(), tally, static_cast<unsigned>(i + 1)).run_until(start + length);
      });
    }
    std::this_thread::sleep_until(start + length / 10);  // the load is established
    rss_warm = resident_bytes();
    for (auto& t : clients) t.join();
    CHECK(spindle_test::wait_until([&] { return server.open_connections() == 0; }, 30s));
    served = server.served();
  }
  // (<=: the baseline may still count a fiber whose join() returned but
  // which had not quite exited.)
  CHECK(spindle_test::wait_until(
      [&] { return spindle::runtime_stats().fibers_alive <= fibers_before; }, 30s));
  const int fds_after = open_fd_count();
  const std::size_t rss_end = resident_bytes();
  std::printf(
      "soak %lld s: %ld connections served (%ld polite, %ld reset, %ld half-open, %ld slow), "
      "%.1f MiB echoed and checked, %ld failures; fds %d -> %d; RSS %.1f MiB warm -> %.1f MiB "
      "end\n",
      static_cast<long long>(length.count()), served, tally.polite.load(), tally.reset.load(),
      tally.half_open.load(), tally.slow.load(),
      static_cast<double>(tally.bytes_echoed.load()) / (1 << 20), tally.failures.load(), fds_before,
      fds_after, static_cast<double>(rss_warm) / (1 << 20),
      static_cast<double>(rss_end) / (1 << 20));
  CHECK(tally.failures.load() == 0);
  CHECK(tally.polite.load() > 0);
  CHECK(tally.slow.load() > 0);
  CHECK(fds_after == fds_before);
  if (!memory_sanitized) CHECK(rss_end < rss_warm + rss_growth_bound);
}
