// tests/chan/chan_stress_test.cpp: hunting lost wake-ups in channels and select.
//
// Each test repeats a racy hand-over many times; a lost wake-up shows as a
// hang (the meson timeout), a wrong count, or a safety-net wake (main.cpp).
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <spindle/spindle.hpp>
#include <thread>
#include <vector>

#include "chan_window.hpp"

using chan_window::parked_receivers;
using chan_window::until;

namespace {

// ping_pong: `rounds` round trips over two unbuffered channels; the echo side
// returns each value plus one.
template <class Start>
long ping_pong(Start start_echo, int rounds) {
  spindle::chan<int> ping(0), pong(0);
  auto echo = [ping, pong]() mutable {
    for (int v : ping) pong.send(v + 1);
  };
  auto stop = start_echo(echo);
  long sum = 0;
  for (int i = 0; i < rounds; ++i) {
    ping.send(i);
    sum += *pong.recv();
  }
  ping.close();
  stop();
  return sum;
}

long expected_ping_pong(long rounds) { return rounds * (rounds - 1) / 2 + rounds; }

auto on_fiber = [](auto body) {
  auto h = std::make_shared<spindle::handle<void>>(spindle::go(body));
  return [h] { h->join(); };
};
auto on_thread = [](auto body) {
  auto t = std::make_shared<std::thread>(body);
  return [t] { t->join(); };
};

}  // namespace

TEST_CASE("unbuffered ping-pong across threads and fibers") {
  constexpr int rounds = 20000;
  SUBCASE("thread to fiber") { CHECK(ping_pong(on_fiber, rounds) == expected_ping_pong(rounds)); }
  SUBCASE("fiber to thread") {
    long sum = spindle::go([] { return ping_pong(on_thread, rounds); }).join();
    CHECK(sum == expected_ping_pong(rounds));
  }
  SUBCASE("fiber to fiber, four pairs at once") {
    std::vector<spindle::handle<long>> pairs;
    for (int i = 0; i < 4; ++i)
      pairs.push_back(spindle::go([] { return ping_pong(on_fiber, rounds); }));
    for (auto& p : pairs) CHECK(p.join() == expected_ping_pong(rounds));
  }
  SUBCASE("thread to thread") {
    CHECK(ping_pong(on_thread, rounds / 4) == expected_ping_pong(rounds / 4));
  }
}

TEST_CASE("select racing two senders and a close") {
  constexpr int rounds = 3000;
  int took_a = 0, took_b = 0, saw_close = 0, mismatches = 0;
  for (int round = 0; round < rounds; ++round) {
    spindle::chan<int> a(0), b(0);
    std::atomic<bool> b_sender_threw{false};
    int result = 0;  // 1: a's value, 2: b's value, -1: b closed
    auto selector = spindle::go([&] {
      spindle::select(spindle::recv(a, [&](std::optional<int> v) { result = v ? *v : -1; }),
                      spindle::recv(b, [&](std::optional<int> v) { result = v ? *v : -1; }));
    });
    if (round % 2 == 0) until([&] { return parked_receivers(a) == 1; });
    auto send_a = spindle::go([a]() mutable { a.send(1); });
    std::thread send_b([b, &b_sender_threw]() mutable {
      try {
        b.send(2);
      } catch (const spindle::usage_error&) {
        b_sender_threw = true;
      }
    });
    auto closer = spindle::go([b]() mutable { b.close(); });
    selector.join();
    closer.join();
    if (result != 1) CHECK(a.recv() == 1);  // a's sender is still parked: take its value
    send_a.join();
    send_b.join();
    took_a += result == 1;
    took_b += result == 2;
    saw_close += result == -1;
    if (b_sender_threw == (result == 2)) ++mismatches;
    if (a.try_recv().has_value()) ++mismatches;
  }
  CHECK(took_a + took_b + saw_close == rounds);
  CHECK(mismatches == 0);
}

TEST_CASE("many producers and consumers on a small buffer, with close, repeated") {
  constexpr int rounds = 200, producers = 4, consumers = 4, per_producer = 300;
  int bad_rounds = 0;
  for (int round = 0; round < rounds; ++round) {
    spindle::chan<int> c(static_cast<std::size_t>(round % 3));
    std::atomic<long> sum{0};
    std::atomic<int> count{0};
    spindle::wait_group producing;
    producing.add(producers);
    std::vector<spindle::handle<void>> fibers;
    std::thread thread_consumer([&] {
      for (int v : c) {
        sum += v;
        ++count;
      }
    });
    for (int p = 0; p < producers; ++p) {
      fibers.push_back(spindle::go([&, p] {
        for (int i = 1; i <= per_producer; ++i) c.send(p * per_producer + i);
        producing.done();
      }));
    }
    for (int i = 1; i < consumers; ++i) {
      fibers.push_back(spindle::go([&] {
        for (int v : c) {
          sum += v;
          ++count;
        }
      }));
    }
    producing.wait();
    c.close();
    for (auto& f : fibers) f.join();
    thread_consumer.join();
    constexpr long n = producers * per_producer;
    if (count != n || sum != n * (n + 1) / 2) ++bad_rounds;
  }
  CHECK(bad_rounds == 0);
}

TEST_CASE("select fan-in from fibers and threads, each value once") {
  constexpr int per_source = 5000;
  spindle::chan<int> a(0), b(4);
  auto source_a = spindle::go([a]() mutable {
    for (int i = 0; i < per_source; ++i) a.send(1);
    a.close();
  });
  std::thread source_b([b]() mutable {
    for (int i = 0; i < per_source; ++i) b.send(2);
    b.close();
  });
  long sum = 0;
  bool a_open = true, b_open = true;
  while (a_open || b_open) {
    spindle::select(
        spindle::recv(a, [&](std::optional<int> v) { v ? sum += *v : (a_open = false); })
            .when(a_open),
        spindle::recv(b, [&](std::optional<int> v) {
          v ? sum += *v : (b_open = false);
        }).when(b_open));
  }
  source_a.join();
  source_b.join();
  CHECK(sum == 3L * per_source);
}

// Receivers that keep timing out race a sender: a timed-out receiver must
// leave no entry behind that could swallow a value, and a claimed one must
// get its value. Half the receivers are fibers, half plain threads.
TEST_CASE("timed receives and selects racing a sender") {
  using namespace std::chrono_literals;
  constexpr int values = 4000, receivers_of_each_kind = 2;
  spindle::chan<int> c(0);
  std::atomic<int> received{0};
  std::atomic<long> sum{0};
  auto receive = [&](int t) {
    while (received.load() < values) {
      std::optional<int> v;
      if (t % 2 == 0) {
        v = c.recv_for(20us);
      } else {
        spindle::select(spindle::recv(c, [&](std::optional<int> got) { v = got; }),
                        spindle::timeout(20us));
      }
      if (v) {
        sum += *v;
        ++received;
      }
    }
  };
  std::vector<std::thread> threads;
  std::vector<spindle::handle<void>> fibers;
  for (int t = 0; t < receivers_of_each_kind; ++t) {
    threads.emplace_back(receive, t);
    fibers.push_back(spindle::go(receive, t));
  }
  auto sender = spindle::go([c]() mutable {
    for (int i = 1; i <= values; ++i) c.send(i);
  });
  sender.join();
  for (auto& t : threads) t.join();
  for (auto& f : fibers) f.join();
  CHECK(received == values);
  CHECK(sum == long{values} * (values + 1) / 2);
  CHECK(parked_receivers(c) == 0);
}

// One receive queue holds, at once, fibers parked holding the channel's lock
// (untimed receives: their wakers need no claim), selects and timed receives
// (which wakers must claim), and plain threads. Senders on fibers and a
// thread hand each value to whichever is first; close then wakes the
// untimed receivers still parked. Every value arrives exactly once.
TEST_CASE("untimed receives, selects, timed receives and threads share one queue") {
  using namespace std::chrono_literals;
  constexpr int per_sender = 3000, fiber_senders = 2;
  constexpr long values = long{per_sender} * (fiber_senders + 1);
  spindle::chan<int> c(0);
  spindle::chan<int> never(0);  // a select's second case that never fires
  std::atomic<long> received{0}, sum{0};
  auto count = [&](int v) {
    sum += v;
    ++received;
  };
  auto untimed = [&, c]() mutable {
    while (std::optional<int> v = c.recv()) count(*v);
  };
  auto selecting = [&, c, never]() mutable {
    for (bool open = true; open;) {
      spindle::select(spindle::recv(c,
                                    [&](std::optional<int> v) {
                                      if (v) count(*v);
                                      open = v.has_value();
                                    }),
                      spindle::recv(never, [](std::optional<int>) {}));
    }
  };
  auto timed = [&, c]() mutable {
    while (!c.closed() || c.size() != 0) {
      if (std::optional<int> v = c.recv_for(50us)) count(*v);
    }
  };
  std::vector<spindle::handle<void>> fibers;
  for (int i = 0; i < 3; ++i) fibers.push_back(spindle::go(untimed));
  fibers.push_back(spindle::go(selecting));
  fibers.push_back(spindle::go(timed));
  std::thread thread_receiver(untimed);
  auto send_all = [c](int base) mutable {
    for (int i = 1; i <= per_sender; ++i) c.send(base + i);
  };
  std::vector<spindle::handle<void>> senders;
  for (int s = 0; s < fiber_senders; ++s) senders.push_back(spindle::go(send_all, s * per_sender));
  std::thread thread_sender(send_all, fiber_senders * per_sender);
  for (auto& s : senders) s.join();
  thread_sender.join();
  c.close();
  for (auto& f : fibers) f.join();
  thread_receiver.join();
  CHECK(received == values);
  CHECK(sum == values * (values + 1) / 2);
  CHECK(parked_receivers(c) == 0);
}
