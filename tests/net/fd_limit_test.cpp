// tests/net/fd_limit_test.cpp: running out of file descriptors (EMFILE).
//
// Each test lowers RLIMIT_NOFILE's soft limit to a little above the
// descriptors in use and fills the rest with /dev/null (fd_squeeze), so the
// next descriptor anybody in the process asks for fails with EMFILE; then it
// frees some and checks that everything works again and nothing leaked.
//
// The tests run on the main thread (spindle's calls work from plain threads);
// the fibers they start only serve.
#include <dirent.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <spindle/spindle.hpp>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "wait.hpp"

using namespace std::chrono_literals;

namespace {

// open_fds: the descriptors open in this process, and the highest of them.
struct fd_census {
  int count = 0;
  int highest = -1;
};
fd_census open_fds() {
  fd_census c;
  DIR* dir = opendir("/proc/self/fd");
  REQUIRE(dir != nullptr);
  const int own = dirfd(dir);
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    const int fd = std::atoi(e->d_name);
    if (fd == own) continue;
    ++c.count;
    c.highest = std::max(c.highest, fd);
  }
  closedir(dir);
  return c;
}

// fd_squeeze: while alive, the process can open no descriptor. Two ways:
// fill_up lowers RLIMIT_NOFILE's soft limit to a little above the highest
// descriptor in use and opens /dev/null until EMFILE; below_in_use lowers the
// limit to 3, below the descriptors in use, which stay usable (a limit
// shrunk from outside, with prlimit, looks the same).
class fd_squeeze {
 public:
  enum mode { fill_up, below_in_use };

  explicit fd_squeeze(mode m = fill_up) {
    REQUIRE(getrlimit(RLIMIT_NOFILE, &saved_) == 0);
    rlimit lower = saved_;
    lower.rlim_cur = m == fill_up ? static_cast<rlim_t>(open_fds().highest + 1 + 16) : 3;
    REQUIRE(setrlimit(RLIMIT_NOFILE, &lower) == 0);
    for (;;) {
      const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        REQUIRE(errno == EMFILE);
        break;
      }
      fillers_.push_back(fd);
    }
  }
  fd_squeeze(const fd_squeeze&) = delete;
  fd_squeeze& operator=(const fd_squeeze&) = delete;
  ~fd_squeeze() {
    release(fillers_.size());
    setrlimit(RLIMIT_NOFILE, &saved_);
  }

  // release: closes n of the /dev/null descriptors (fill_up).
  void release(std::size_t n) {
    for (; n > 0 && !fillers_.empty(); --n) {
      ::close(fillers_.back());
      fillers_.pop_back();
    }
  }

 private:
  rlimit saved_{};
  std::vector<int> fillers_;
};

// warm_up: starts the runtime and the event loop, which keep a few
// descriptors (epoll, eventfd, timerfd...) for good, before a test counts them.
void warm_up() {
  spindle::tcp_listener ln = spindle::listen_tcp("127.0.0.1:0");
  spindle::tcp_stream s = spindle::dial_tcp(ln.local_address(), 5s);
  spindle::tcp_stream c = ln.accept(5s);
  spindle::fs::open("/dev/null");
  spindle::udp_socket::bind("127.0.0.1:0");
}

// emfile_error: "" if f threw a std::system_error with EMFILE whose what()
// starts with `prefix`, otherwise what went wrong.
template <class F>
std::string emfile_error(F f, const std::string& prefix) {
  try {
    f();
    return "no error";
  } catch (const std::system_error& e) {
    if (e.code() != std::errc::too_many_files_open) return std::string("wrong code: ") + e.what();
    if (std::string(e.what()).rfind(prefix, 0) != 0) return std::string("wrong text: ") + e.what();
    return "";
  }
}

// echo_server: the echo_server sample's logic: a fiber accepting
// connections, one fiber echoing each; accept errors are counted, and the
// acceptor backs off 5 ms and carries on, as Go's http.Server does.
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
  int accepted() const { return accepted_.load(); }
  int emfile_errors() const { return emfile_errors_.load(); }
  int other_errors() const { return other_errors_.load(); }

 private:
  static void echo(spindle::tcp_stream c) {
    char buf[4096];
    try {
      while (std::size_t n = c.read(buf, sizeof buf)) c.write_all(buf, n);
    } catch (const spindle::net_error&) {
    }
  }

  void serve() {
    for (;;) {
      try {
        spindle::tcp_stream c = listener_.accept();
        accepted_.fetch_add(1);
        spindle::go(echo, std::move(c));
      } catch (const spindle::net_error& e) {
        if (!listener_.is_open()) return;
        (e.code() == std::errc::too_many_files_open ? emfile_errors_ : other_errors_).fetch_add(1);
        spindle::sleep_for(5ms);
      }
    }
  }

  spindle::tcp_listener listener_;
  spindle::handle<void> acceptor_;
  std::atomic<int> accepted_{0}, emfile_errors_{0}, other_errors_{0};
};

bool echoes(spindle::tcp_stream& s, const std::string& message) {
  s.write_all(message, 5s);
  std::string back(message.size(), '\0');
  s.read_exact(back.data(), back.size(), 5s);
  return back == message;
}

// raw_client: a plain blocking socket, created before the squeeze so that
// connecting needs no new descriptor; reads give up after 10 s.
class raw_client {
 public:
  raw_client() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    REQUIRE(fd_ >= 0);
    const timeval limit{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  }
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;
  ~raw_client() { ::close(fd_); }

  bool connect(const spindle::endpoint& to) {
    return ::connect(fd_, static_cast<const sockaddr*>(to.native()),
                     static_cast<socklen_t>(to.native_size())) == 0;
  }
  // echoes: sends `message` and reads it back.
  bool echoes(const std::string& message) {
    if (::send(fd_, message.data(), message.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(message.size())) {
      return false;
    }
    std::string back(message.size(), '\0');
    std::size_t got = 0;
    while (got < back.size()) {
      const ssize_t n = ::recv(fd_, back.data() + got, back.size() - got, 0);
      if (n <= 0) return false;
      got += static_cast<std::size_t>(n);
    }
    return back == message;
  }

 private:
  int fd_;
};

}  // namespace

TEST_CASE("out of descriptors, listen, dial, bind and open fail with EMFILE naming the call") {
  warm_up();
  const int before = open_fds().count;
  {
    spindle::tcp_listener ln = spindle::listen_tcp("127.0.0.1:0");
    const spindle::endpoint at = ln.local_address();
    fd_squeeze squeeze;
    CHECK(emfile_error([] { spindle::listen_tcp("127.0.0.1:0"); }, "listen 127.0.0.1:0: ") == "");
    CHECK(emfile_error([&] { spindle::dial_tcp(at, 5s); }, "dial " + at.to_string() + ": ") == "");
    CHECK(emfile_error([] { spindle::udp_socket::bind("127.0.0.1:0"); }, "bind 127.0.0.1:0: ") ==
          "");
    CHECK(emfile_error([] { spindle::fs::open("/dev/null"); }, "open /dev/null: ") == "");

    squeeze.release(3);  // a listener, a client and the server's end
    spindle::tcp_listener again = spindle::listen_tcp("127.0.0.1:0");
    auto server = spindle::go([&] {
      spindle::tcp_stream c = again.accept(5s);
      char buf[2];
      c.read_exact(buf, 2, 5s);
      c.write_all(buf, 2, 5s);
    });
    spindle::tcp_stream s = spindle::dial_tcp(again.local_address(), 5s);
    CHECK(echoes(s, "ok"));
    server.join();
  }
  CHECK(open_fds().count == before);
}

TEST_CASE("an echo server out of descriptors keeps serving its connections and accepts again") {
  warm_up();
  const int fds_before = open_fds().count;
  const std::uint64_t fibers_before = spindle::runtime_stats().fibers_alive;
  fd_squeeze::mode mode = fd_squeeze::fill_up;
  SUBCASE("every descriptor taken") { mode = fd_squeeze::fill_up; }
  SUBCASE("the limit lowered below the descriptors in use") { mode = fd_squeeze::below_in_use; }
  {
    echo_server server;
    std::vector<spindle::tcp_stream> established;
    for (int i = 0; i < 8; ++i) established.push_back(spindle::dial_tcp(server.address(), 5s));
    for (auto& s : established) CHECK(echoes(s, "before"));
    REQUIRE(spindle_test::wait_until([&] { return server.accepted() == 8; }));

    std::vector<std::unique_ptr<raw_client>> late(4);
    for (auto& c : late) c = std::make_unique<raw_client>();
    {
      fd_squeeze squeeze(mode);
      for (auto& c : late) CHECK(c->connect(server.address()));  // into the kernel's backlog
      CHECK(spindle_test::wait_until([&] { return server.emfile_errors() > 0; }));
      for (auto& s : established) CHECK(echoes(s, "during"));
      CHECK(server.accepted() == 8);  // the late ones wait in the backlog
    }
    for (auto& c : late) CHECK(c->echoes("after"));
    CHECK(server.accepted() == 12);
    CHECK(server.other_errors() == 0);
    for (auto& s : established) CHECK(echoes(s, "after"));
  }
  CHECK(spindle_test::wait_until(
      [&] { return spindle::runtime_stats().fibers_alive <= fibers_before; }));
  CHECK(open_fds().count == fds_before);
}
