// tests/chan/select_test.cpp: select's cases, fairness, blocking and races.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <spindle/spindle.hpp>
#include <thread>
#include <vector>

#include "chan_window.hpp"

using namespace std::chrono_literals;
using chan_window::parked_receivers;
using chan_window::parked_senders;
using chan_window::until;

namespace {

// fairness: two always-ready receive cases, `rounds` selects; returns the
// share of the first case.
double fairness(int rounds) {
  spindle::chan<int> a(1), b(1);
  a.send(1);
  b.send(2);
  int first = 0;
  for (int i = 0; i < rounds; ++i) {
    std::size_t fired =
        spindle::select(spindle::recv(a, [&](std::optional<int> v) { a.send(*v); }),
                        spindle::recv(b, [&](std::optional<int> v) { b.send(*v); }));
    if (fired == 0) ++first;
  }
  return static_cast<double>(first) / rounds;
}

}  // namespace

TEST_CASE("select chooses uniformly among ready cases (100,000 selects, 50% +- 2%)") {
  SUBCASE("from a plain thread") { CHECK(std::abs(fairness(100000) - 0.5) <= 0.02); }
  SUBCASE("from a fiber") {
    double share = spindle::go([] { return fairness(100000); }).join();
    CHECK(std::abs(share - 0.5) <= 0.02);
  }
}

TEST_CASE("select runs the handler of the case it performs and returns its position") {
  spindle::chan<int> in(1), out(1), idle(1);
  in.send(5);
  int got = 0;
  CHECK(spindle::select(spindle::recv(idle),
                        spindle::recv(in, [&](std::optional<int> v) { got = *v; })) == 1);
  CHECK(got == 5);
  bool sent = false;
  CHECK(spindle::select(spindle::recv(idle), spindle::send(out, 6, [&] { sent = true; })) == 1);
  CHECK(sent);
  CHECK(out.recv() == 6);
}

TEST_CASE("default case: never blocks") {
  spindle::chan<int> c(1);
  bool defaulted = false;
  CHECK(spindle::select(spindle::recv(c), spindle::default_case([&] { defaulted = true; })) == 1);
  CHECK(defaulted);
  c.send(1);
  CHECK(spindle::select(spindle::recv(c), spindle::default_case()) == 0);
  // a full channel makes a send case not ready
  c.send(2);
  CHECK(spindle::select(spindle::send(c, 3), spindle::default_case()) == 1);
  CHECK(c.recv() == 2);
}

// timeout_case: the timeout case fires when nothing is ready, and leaves
// nothing queued.
void timeout_case() {
  spindle::chan<int> c(0);
  bool timed_out = false;
  CHECK(spindle::select(spindle::recv(c), spindle::timeout(2ms, [&] { timed_out = true; })) == 1);
  CHECK(timed_out);
  CHECK(parked_receivers(c) == 0);  // the timed-out case left nothing queued
  CHECK(spindle::select(spindle::send(c, 1),
                        spindle::deadline(std::chrono::steady_clock::now() + 1ms)) == 1);
  CHECK(parked_senders(c) == 0);
  // a ready case wins over a timeout that has already passed
  spindle::chan<int> ready(1);
  ready.send(1);
  CHECK(spindle::select(spindle::timeout(0ms), spindle::recv(ready)) == 1);
}

TEST_CASE("timeout case fires when nothing is ready") {
  SUBCASE("from a plain thread") { timeout_case(); }
  SUBCASE("from a fiber") { spindle::go(timeout_case).join(); }
}

TEST_CASE("disabled cases and nil channels never fire") {
  spindle::chan<int> nil;
  spindle::chan<int> ready(1);
  ready.send(1);
  CHECK(spindle::select(spindle::recv(nil), spindle::default_case()) == 1);
  CHECK(spindle::select(spindle::recv(ready).when(false), spindle::default_case()) == 1);
  CHECK(spindle::select(spindle::send(nil, 1), spindle::recv(ready)) == 1);
  CHECK_THROWS_AS(spindle::select(spindle::recv(nil)), spindle::usage_error);
  CHECK(spindle::select(spindle::recv(nil), spindle::timeout(1ms)) == 1);
}

TEST_CASE("select on closed channels") {
  spindle::chan<int> c(1);
  c.close();
  bool got_empty = false;
  CHECK(spindle::select(spindle::recv(c, [&](std::optional<int> v) { got_empty = !v; })) == 0);
  CHECK(got_empty);
  CHECK_THROWS_WITH_AS(spindle::select(spindle::send(c, 1)), "send on closed channel",
                       spindle::usage_error);
}

TEST_CASE("a parked select is woken by a sender, a receiver or close") {
  spindle::chan<int> a(0), b(0);
  SUBCASE("sender") {
    std::optional<int> got;
    auto s = spindle::go([&] {
      return spindle::select(spindle::recv(a),
                             spindle::recv(b, [&](std::optional<int> v) { got = v; }));
    });
    until([&] { return parked_receivers(a) == 1 && parked_receivers(b) == 1; });
    b.send(2);
    CHECK(s.join() == 1);
    CHECK(got == 2);
  }
  SUBCASE("receiver") {
    std::thread t([&] { spindle::select(spindle::send(a, 10), spindle::send(b, 20)); });
    until([&] { return parked_senders(a) == 1 && parked_senders(b) == 1; });
    CHECK(a.recv() == 10);
    t.join();
    CHECK(parked_senders(b) == 0);
  }
  SUBCASE("close") {
    auto s = spindle::go([&] {
      bool closed = false;
      spindle::select(spindle::recv(a, [&](std::optional<int> v) { closed = !v; }),
                      spindle::recv(b));
      return closed;
    });
    until([&] { return parked_receivers(a) == 1; });
    a.close();
    CHECK(s.join());
    CHECK(parked_receivers(b) == 0);
  }
}

TEST_CASE("a select racing two senders takes exactly one value and leaves nothing behind") {
  for (int round = 0; round < 200; ++round) {
    spindle::chan<int> a(0), b(0);
    std::atomic<int> taken{0};
    auto selector = spindle::go([&] {
      spindle::select(spindle::recv(a, [&](std::optional<int> v) { taken = *v; }),
                      spindle::recv(b, [&](std::optional<int> v) { taken = *v; }));
    });
    until([&] { return parked_receivers(a) == 1 && parked_receivers(b) == 1; });
    auto send_a = spindle::go([a]() mutable { a.send(1); });
    std::thread send_b([b]() mutable { b.send(2); });
    selector.join();
    // the loser is still parked with its value; take it
    int other = taken == 1 ? *b.recv() : *a.recv();
    send_a.join();
    send_b.join();
    CHECK(taken + other == 3);
    CHECK(parked_receivers(a) + parked_receivers(b) + parked_senders(a) + parked_senders(b) == 0);
    CHECK_FALSE(a.try_recv().has_value());
    CHECK_FALSE(b.try_recv().has_value());
  }
}

TEST_CASE("a select with both directions on one channel") {
  spindle::chan<int> c(0);
  std::atomic<int> received{-1};
  auto peer = spindle::go([c]() mutable { c.send(4); });
  spindle::select(spindle::send(c, 1),
                  spindle::recv(c, [&](std::optional<int> v) { received = *v; }));
  peer.join();
  CHECK(received == 4);
}
