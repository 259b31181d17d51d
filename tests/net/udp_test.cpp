// tests/net/udp_test.cpp: UDP sockets over loopback.
#include <doctest/doctest.h>

#include <spindle/spindle.hpp>
#include <string>

using namespace std::chrono_literals;

TEST_CASE("UDP datagrams make round trips between two sockets") {
  spindle::go([] {
    spindle::udp_socket a = spindle::udp_socket::bind("127.0.0.1:0");
    spindle::udp_socket b = spindle::udp_socket::bind("127.0.0.1:0");
    CHECK(a.local_address().port() != 0);
    auto echo = spindle::go([&] {
      char buf[2048];
      for (int i = 0; i < 100; ++i) {
        spindle::endpoint from;
        const std::size_t n = b.recv_from(buf, sizeof buf, from);
        b.send_to(buf, n, from);
      }
    });
    for (int i = 0; i < 100; ++i) {
      const std::string msg = "datagram " + std::to_string(i);
      a.send_to(msg.data(), msg.size(), b.local_address());
      char buf[2048];
      spindle::endpoint from;
      const std::size_t n = a.recv_from(buf, sizeof buf, from, 10s);
      CHECK(std::string(buf, n) == msg);
      CHECK(from == b.local_address());
    }
    echo.join();
  }).join();
}

TEST_CASE("UDP: an empty datagram, truncation, a receive deadline and close") {
  spindle::go([] {
    spindle::udp_socket a = spindle::udp_socket::bind("127.0.0.1:0");
    spindle::udp_socket b = spindle::udp_socket::bind("127.0.0.1:0");
    char buf[4];
    spindle::endpoint from;
    a.send_to("", 0, b.local_address());
    CHECK(b.recv_from(buf, sizeof buf, from) == 0);
    a.send_to("truncated", 9, b.local_address());
    CHECK(b.recv_from(buf, sizeof buf, from) == 4);
    CHECK(std::string(buf, 4) == "trun");
    CHECK_THROWS_AS(b.recv_from(buf, sizeof buf, from, 20ms), spindle::timeout_error);
    auto receiver = spindle::go([&] {
      try {
        b.recv_from(buf, sizeof buf, from);
      } catch (const spindle::net_error& e) {
        return e.code() == std::errc::bad_file_descriptor;
      }
      return false;
    });
    b.close();
    CHECK(receiver.join());
  }).join();
}

TEST_CASE("UDP over IPv6 loopback") {
  spindle::go([] {
    spindle::udp_socket a;
    try {
      a = spindle::udp_socket::bind("[::1]:0");
    } catch (const spindle::net_error& e) {
      MESSAGE("no IPv6 loopback here: " << e.what());
      return;
    }
    spindle::udp_socket b = spindle::udp_socket::bind("[::1]:0");
    a.send_to("v6", 2, b.local_address());
    char buf[8];
    spindle::endpoint from;
    CHECK(b.recv_from(buf, sizeof buf, from, 10s) == 2);
    CHECK(from == a.local_address());
  }).join();
}
