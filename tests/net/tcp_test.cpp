// tests/net/tcp_test.cpp: TCP listeners and streams over loopback.
//
// doctest's CAPTURE and INFO keep their context in thread_locals, and a fiber
// may move between worker threads, so the fibers here only use CHECKs.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <numeric>
#include <spindle/spindle.hpp>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

// run_in_fiber: runs f on a fiber and waits for it (rethrowing its exception).
template <class F>
void run_in_fiber(F f) {
  spindle::go(std::move(f)).join();
}

std::vector<char> pattern(std::size_t size) {
  std::vector<char> bytes(size);
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>((i * 131 + 7) % 251);
  return bytes;
}

}  // namespace

TEST_CASE("listen on port 0 reports the bound port; accept and dial exchange bytes") {
  run_in_fiber([] {
    spindle::tcp_listener ln = spindle::listen_tcp("127.0.0.1:0");
    const spindle::endpoint at = ln.local_address();
    CHECK(at.host() == "127.0.0.1");
    CHECK(at.port() != 0);
    auto server = spindle::go([&] {
      spindle::tcp_stream c = ln.accept();
      char buf[5];
      c.read_exact(buf, sizeof buf);
      c.write_all(buf, sizeof buf);
      return c.remote_address();
    });
    spindle::tcp_stream s = spindle::dial_tcp(at.to_string());
    CHECK(s.remote_address() == at);
    s.write_all("hello");
    char echo[5];
    s.read_exact(echo, sizeof echo);
    CHECK(std::string(echo, 5) == "hello");
    CHECK(server.join() == s.local_address());
  });
}

TEST_CASE("IPv6 loopback") {
  run_in_fiber([] {
    spindle::tcp_listener ln;
    try {
      ln = spindle::listen_tcp("[::1]:0");
    } catch (const spindle::net_error& e) {
      MESSAGE("no IPv6 loopback here: " << e.what());
      return;
    }
    CHECK(ln.local_address().is_v6());
    CHECK(ln.local_address().to_string().rfind("[::1]:", 0) == 0);
    auto server = spindle::go([&] {
      spindle::tcp_stream c = ln.accept();
      c.write_all("six");
    });
    spindle::tcp_stream s = spindle::dial_tcp(ln.local_address());
    char buf[3];
    s.read_exact(buf, 3);
    CHECK(std::string(buf, 3) == "six");
    server.join();
  });
}

TEST_CASE("read returns 0 at end of stream, after the bytes; half-close keeps the other way open") {
  run_in_fiber([] {
    spindle::tcp_listener ln = spindle::listen_tcp("127.0.0.1:0");
    auto server = spindle::go([&] {
      spindle::tcp_stream c = ln.accept();
      std::string got;
      char buf[64];
      while (std::size_t n = c.read(buf, sizeof buf)) got.append(buf, n);
      c.write_all("got " + got);  // the client's read side is still open
    });
    spindle::tcp_stream s = spindle::dial_tcp(ln.local_address());
    s.write_all("request");
    s.shutdown();
    char buf[64];
    CHECK(s.read_full(buf, sizeof buf) == 11);
    CHECK(std::string(buf, 11) == "got request");
    CHECK(s.read(buf, sizeof buf) == 0);
    CHECK(s.read(buf, sizeof buf) == 0);
    server.join();
  });
}

TEST_CASE("payloads from 1 byte to 8 MiB arrive intact") {
  run_in_fiber([] {
    spindle::tcp_listener ln = spindle::listen_tcp("127.0.0.1:0");
    for (std::size_t size : {std::size_t{1}, std::size_t{100}, std::size_t{65536},
                             std::size_t{65537}, std::size_t{1} << 20, std::size_t{8} << 20}) {
      const std::vector<char> sent = pattern(size);
      auto echo = spindle::go([&] {
        spindle::tcp_stream c = ln.accept();
        std::vector<char> buf(size);
        c.read_exact(buf.data(), size);
        c.write_all(buf.data(), size);
      });
      spindle::tcp_stream s = spindle::dial_tcp(ln.local_address());
      // Write from another fiber: both directions carry 8 MiB at once.
      auto writer = spindle::go([&] { s.write_all(sent.data(), sent.size()); });
      std::vector<char> got(size);
      s.read_exact(got.data(), size);
      writer.join();
      CHECK(got == sent);
      echo.join();
    }
  });
}

constexpr int connections = 200;
constexpr int messages = 20;

TEST_CASE("200 concurrent connections, each echoing many messages") {
  run_in_fiber([] {
    spindle::tcp_listener ln = spindle::listen_tcp("127.0.0.1:0");
    auto server = spindle::go([&] {
      spindle::wait_group handlers;
      for (int i = 0; i < connections; ++i) {
        handlers.add(1);
        spindle::go([&handlers, c = ln.accept()]() mutable {
          char buf[256];
          while (std::size_t n = c.read(buf, sizeof buf)) c.write_all(buf, n);
          handlers.done();
        });
      }
      handlers.wait();
    });
    std::atomic<int> ok{0};
    spindle::wait_group clients;
    for (int i = 0; i < connections; ++i) {
      clients.add(1);
      spindle::go([&, i] {
        spindle::tcp_stream s = spindle::dial_tcp(ln.local_address());
        bool good = true;
        for (int m = 0; m < messages; ++m) {
          const std::string msg = std::to_string(i) + "/" + std::to_string(m);
          s.write_all(msg);
          std::string back(msg.size(), '\0');
          s.read_exact(back.data(), back.size());
          good = good && back == msg;
        }
        if (good) ok.fetch_add(1);
        clients.done();
      });
    }
    clients.wait();
    CHECK(ok.load() == connections);
    server.join();
  });
}

TEST_CASE("a peer reset mid-stream gives connection_reset after the bytes already sent") {
  run_in_fiber([] {
    spindle::tcp_listener ln = spindle::listen_tcp("127.0.0.1:0");
    spindle::chan<int> read_prefix(1);
    auto server = spindle::go([&] {
      spindle::tcp_stream c = ln.accept();
      char prefix[6];
      c.read_exact(prefix, 6);
      read_prefix.send(1);
      std::string rest;
      char buf[64];
      try {
        while (std::size_t n = c.read(buf, sizeof buf)) rest.append(buf, n);
      } catch (const spindle::net_error& e) {
        CHECK(e.code() == std::errc::connection_reset);
        CHECK(std::string(e.what()).find("read 127.0.0.1:") == 0);
        return rest;
      }
      FAIL("read returned end of stream instead of a reset");
      return rest;
    });
    // A raw client socket, so that closing it can send a reset (SO_LINGER 0).
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    const spindle::endpoint at = ln.local_address();
    REQUIRE(::connect(fd, static_cast<const sockaddr*>(at.native()),
                      static_cast<socklen_t>(at.native_size())) == 0);
    REQUIRE(::send(fd, "prefix", 6, 0) == 6);
    read_prefix.recv();
    REQUIRE(::send(fd, "more", 4, 0) == 4);
    const linger reset{1, 0};
    REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset) == 0);
    ::close(fd);
    CHECK(server.join() == "more");
  });
}

TEST_CASE("dialing a closed port is refused, with the operation and address in the message") {
  run_in_fiber([] {
    spindle::endpoint at;
    {
      spindle::tcp_listener ln = spindle::listen_tcp("127.0.0.1:0");
      at = ln.local_address();
    }
    try {
      spindle::dial_tcp(at.to_string());
      FAIL("dial succeeded");
    } catch (const spindle::net_error& e) {
      CHECK(e.code() == std::errc::connection_refused);
      CHECK(std::string(e.what()).find("dial " + at.to_string() + ": ") == 0);
    }
  });
}

TEST_CASE("resolve localhost and dial it by name") {
  run_in_fiber([] {
    const std::vector<spindle::endpoint> found = spindle::resolve("localhost", 80);
    REQUIRE_FALSE(found.empty());
    for (const spindle::endpoint& e : found) {
      CHECK(e.port() == 80);
      CHECK((e.host() == "127.0.0.1" || e.host() == "::1"));
    }
    spindle::tcp_listener ln = spindle::listen_tcp("127.0.0.1:0");
    auto server = spindle::go([&] { ln.accept().write_all("x"); });
    spindle::tcp_stream s =
        spindle::dial_tcp("localhost:" + std::to_string(ln.local_address().port()));
    char c;
    s.read_exact(&c, 1);
    CHECK(c == 'x');
    server.join();
    CHECK_THROWS_AS(spindle::resolve("no-such-host.invalid"), spindle::net_error);
  });
}

TEST_CASE("invalid addresses and ports get a clear error at the call") {
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:http", "::1:80",
                          "[::1:80", "300.1.2.3:80"}) {
    CAPTURE(bad);
    try {
      spindle::listen_tcp(bad);
      FAIL("listen accepted it");
    } catch (const spindle::net_error& e) {
      CHECK(e.code() == std::errc::invalid_argument);
      CHECK(std::string(e.what()).find(bad) != std::string::npos);
    }
  }
  CHECK_THROWS_AS(spindle::dial_tcp("localhost:65536"), spindle::net_error);
  CHECK_THROWS_AS(spindle::endpoint::parse("localhost:80"), spindle::net_error);
  CHECK(spindle::endpoint::parse("[::1]:8080").to_string() == "[::1]:8080");
  CHECK(spindle::endpoint::parse(":80").to_string() == "0.0.0.0:80");
}

TEST_CASE("deadlines fire: read on an idle connection, accept with nobody dialing") {
  run_in_fiber([] {
    spindle::tcp_listener ln = spindle::listen_tcp("127.0.0.1:0");
    CHECK_THROWS_AS(ln.accept(20ms), spindle::timeout_error);
    spindle::tcp_stream s = spindle::dial_tcp(ln.local_address(), 5s);
    spindle::tcp_stream peer = ln.accept();
    char buf[8];
    try {
      s.read(buf, sizeof buf, 30ms);
      FAIL("read returned");
    } catch (const spindle::timeout_error& e) {
      CHECK(e.code() == std::errc::timed_out);
      CHECK(std::string(e.what()).find("read 127.0.0.1:") == 0);
    }
    // The stream still works after a read timeout.
    peer.write_all("ok");
    s.read_exact(buf, 2, std::chrono::steady_clock::now() + 10s);
    CHECK(std::string(buf, 2) == "ok");
  });
}

TEST_CASE("a write that cannot finish by its deadline times out and closes the stream") {
  run_in_fiber([] {
    spindle::tcp_listener ln = spindle::listen_tcp("127.0.0.1:0");
    spindle::tcp_stream s = spindle::dial_tcp(ln.local_address());
    spindle::tcp_stream idle_peer = ln.accept();  // never reads
    const std::vector<char> big(64 << 20);
    CHECK_THROWS_AS(s.write_all(big.data(), big.size(), 50ms), spindle::timeout_error);
    CHECK_FALSE(s.is_open());
    CHECK_THROWS_AS(s.write_all("x"), spindle::net_error);
  });
}

TEST_CASE("close wakes a blocked reader and a blocked acceptor") {
  run_in_fiber([] {
    spindle::tcp_listener ln = spindle::listen_tcp("127.0.0.1:0");
    spindle::tcp_stream s = spindle::dial_tcp(ln.local_address());
    spindle::tcp_stream peer = ln.accept();
    auto reader = spindle::go([&] {
      char buf[8];
      try {
        s.read(buf, sizeof buf);
      } catch (const spindle::net_error& e) {
        return e.code() == std::errc::bad_file_descriptor;
      }
      return false;
    });
    auto acceptor = spindle::go([&] {
      try {
        ln.accept();
      } catch (const spindle::net_error& e) {
        return e.code() == std::errc::bad_file_descriptor;
      }
      return false;
    });
    // Whether or not they have parked yet, both must fail once closed.
    s.close();
    ln.close();
    CHECK(reader.join());
    CHECK(acceptor.join());
    // The peer sees the close as end of stream.
    char buf[1];
    CHECK(peer.read(buf, 1) == 0);
  });
}

TEST_CASE("streams work from plain threads too") {
  spindle::tcp_listener ln = spindle::listen_tcp("127.0.0.1:0");
  auto server = spindle::go([&] {
    spindle::tcp_stream c = ln.accept();
    char buf[4];
    c.read_exact(buf, 4);
    c.write_all(buf, 4);
  });
  spindle::tcp_stream s = spindle::dial_tcp(ln.local_address());
  s.set_no_delay(true);
  s.set_keep_alive(true, std::chrono::seconds(30));
  s.write_all("ping");
  char buf[4];
  s.read_exact(buf, 4);
  CHECK(std::string(buf, 4) == "ping");
  server.join();
}
