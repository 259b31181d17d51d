// tests/chan/chan_test.cpp: chan<T> semantics, from fibers and plain threads.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <numeric>
#include <spindle/spindle.hpp>
#include <string>
#include <thread>
#include <vector>

#include "chan_window.hpp"

using namespace std::chrono_literals;
using chan_window::parked_receivers;
using chan_window::parked_senders;
using chan_window::until;

TEST_CASE("a buffered channel holds capacity values in FIFO order") {
  spindle::chan<int> c(3);
  CHECK(c.capacity() == 3);
  CHECK(c.try_send(1));
  CHECK(c.try_send(2));
  CHECK(c.try_send(3));
  CHECK_FALSE(c.try_send(4));
  CHECK(c.size() == 3);
  CHECK(c.recv() == 1);
  CHECK(c.try_recv() == 2);
  CHECK(c.recv() == 3);
  CHECK_FALSE(c.try_recv().has_value());
}

TEST_CASE("copies of a channel refer to the same channel") {
  spindle::chan<std::string> a(1);
  spindle::chan<std::string> b = a;
  CHECK(a == b);
  a.send("shared");
  CHECK(b.recv() == "shared");
  spindle::chan<std::string> other(1);
  CHECK_FALSE(a == other);
}

TEST_CASE("unbuffered: a send completes only when a receiver takes the value") {
  spindle::chan<int> c(0);
  CHECK_FALSE(c.try_send(1));  // nobody is receiving
  constexpr int rounds = 200;
  std::atomic<int> sent{0};
  auto sender = spindle::go([&] {
    for (int i = 0; i < rounds; ++i) {
      c.send(i);
      sent.store(i + 1);
    }
  });
  bool in_order = true, ahead = false;
  for (int i = 0; i < rounds; ++i) {
    if (sent.load() > i) ahead = true;  // send i finished before receive i
    if (c.recv() != i) in_order = false;
  }
  sender.join();
  CHECK(in_order);
  CHECK_FALSE(ahead);
}

TEST_CASE("unbuffered: a parked sender hands its value to try_recv") {
  spindle::chan<int> c(0);
  auto sender = spindle::go([c]() mutable { c.send(7); });
  until([&] { return parked_senders(c) == 1; });
  CHECK(c.try_recv() == 7);
  sender.join();
}

TEST_CASE("a receive from a full buffer admits a parked sender and keeps FIFO order") {
  spindle::chan<int> c(2);
  c.send(1);
  c.send(2);
  auto sender = spindle::go([c]() mutable { c.send(3); });
  until([&] { return parked_senders(c) == 1; });
  CHECK(c.recv() == 1);
  sender.join();
  CHECK(c.recv() == 2);
  CHECK(c.recv() == 3);
}

TEST_CASE("move-only values") {
  spindle::chan<std::unique_ptr<int>> c(0);
  auto sender = spindle::go([c]() mutable {
    for (int i = 0; i < 10; ++i) c.send(std::make_unique<int>(i));
    c.close();
  });
  int sum = 0;
  for (std::unique_ptr<int>& p : c) sum += *p;
  sender.join();
  CHECK(sum == 45);

  spindle::chan<std::unique_ptr<int>> buffered(1);
  auto p = std::make_unique<int>(5);
  CHECK(buffered.try_send(std::move(p)));
  auto q = std::make_unique<int>(6);
  CHECK_FALSE(buffered.try_send(std::move(q)));
  REQUIRE(q);  // a failed try_send leaves the value with the caller
  CHECK(*q == 6);
  CHECK(**buffered.recv() == 5);
}

namespace {
// over_aligned: an element type aligned beyond the allocator's default and
// beyond a cache line; every object it constructs counts a misplacement.
struct alignas(256) over_aligned {
  static inline std::atomic<int> misplaced{0};
  int value;
  explicit over_aligned(int v) noexcept : value(v) { check(); }
  over_aligned(over_aligned&& o) noexcept : value(o.value) { check(); }
  void check() const noexcept {
    if (reinterpret_cast<std::uintptr_t>(this) % alignof(over_aligned) != 0) ++misplaced;
  }
};
}  // namespace

TEST_CASE("over-aligned values keep their alignment in the buffer") {
  std::vector<spindle::chan<over_aligned>> chans;
  for (std::size_t capacity : {1, 2, 3, 7}) chans.emplace_back(capacity);  // several allocations
  for (auto& c : chans) {
    for (std::size_t i = 0; i < c.capacity(); ++i) CHECK(c.try_send(over_aligned(int(i))));
    for (std::size_t i = 0; i < c.capacity(); ++i) CHECK(c.recv()->value == int(i));
  }
  CHECK(over_aligned::misplaced == 0);
}

TEST_CASE("range-for receives until closed and drained") {
  spindle::chan<int> c(4);
  auto producer = spindle::go([c]() mutable {
    for (int i = 1; i <= 100; ++i) c.send(i);
    c.close();
  });
  int sum = 0, count = 0;
  for (int v : c) {
    sum += v;
    ++count;
  }
  producer.join();
  CHECK(count == 100);
  CHECK(sum == 5050);
}

TEST_CASE("close: receivers get the buffered values first, then nothing") {
  spindle::chan<int> c(3);
  c.send(1);
  c.send(2);
  c.close();
  CHECK(c.closed());
  CHECK(c.recv() == 1);
  CHECK(c.try_recv() == 2);
  CHECK_FALSE(c.recv().has_value());
  CHECK_FALSE(c.try_recv().has_value());
}

TEST_CASE("the closed-channel errors") {
  spindle::chan<int> c(1);
  c.close();
  CHECK_THROWS_WITH_AS(c.send(1), "send on closed channel", spindle::usage_error);
  CHECK_THROWS_WITH_AS(c.try_send(1), "send on closed channel", spindle::usage_error);
  CHECK_THROWS_WITH_AS(c.close(), "close of closed channel", spindle::usage_error);
  spindle::chan<int> nil;
  CHECK_FALSE(static_cast<bool>(nil));
  CHECK_THROWS_AS(nil.send(1), spindle::usage_error);
  CHECK_THROWS_AS(nil.recv(), spindle::usage_error);
  CHECK_THROWS_AS(nil.close(), spindle::usage_error);
}

TEST_CASE("close wakes every blocked receiver and sender, fibers and threads") {
  constexpr int per_kind = 8;
  spindle::chan<int> receive_side(0);
  spindle::chan<int> send_side(0);
  std::atomic<int> receivers_saw_close{0}, senders_saw_close{0};
  auto receive = [&] {
    if (!receive_side.recv().has_value()) ++receivers_saw_close;
  };
  auto send = [&] {
    try {
      send_side.send(1);
    } catch (const spindle::usage_error&) {
      ++senders_saw_close;
    }
  };
  std::vector<spindle::handle<void>> fibers;
  std::vector<std::thread> threads;
  for (int i = 0; i < per_kind; ++i) {
    fibers.push_back(spindle::go(receive));
    fibers.push_back(spindle::go(send));
    threads.emplace_back(receive);
    threads.emplace_back(send);
  }
  until([&] {
    return parked_receivers(receive_side) == 2 * per_kind &&
           parked_senders(send_side) == 2 * per_kind;
  });
  receive_side.close();
  send_side.close();
  for (auto& f : fibers) f.join();
  for (auto& t : threads) t.join();
  CHECK(receivers_saw_close == 2 * per_kind);
  CHECK(senders_saw_close == 2 * per_kind);
}

// exactly_once: P producers (half fibers, half threads) send disjoint ranges;
// C consumers (half fibers, half threads) receive until close. Every value
// must arrive once: the count, the sum and a per-value tally agree.
void exactly_once(std::size_t capacity) {
  constexpr int producers = 8, consumers = 6, per_producer = 2000;
  constexpr int total = producers * per_producer;
  spindle::chan<int> c(capacity);
  std::vector<std::atomic<int>> seen(total);
  std::atomic<long long> sum{0};
  std::atomic<int> count{0};
  spindle::wait_group producing;
  producing.add(producers);
  auto produce = [&](int p) {
    for (int i = 0; i < per_producer; ++i) c.send(p * per_producer + i);
    producing.done();
  };
  auto consume = [&] {
    for (int v : c) {
      seen[static_cast<std::size_t>(v)].fetch_add(1, std::memory_order_relaxed);
      sum += v;
      ++count;
    }
  };
  std::vector<spindle::handle<void>> fibers;
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    if (p % 2 == 0) {
      fibers.push_back(spindle::go(produce, p));
    } else {
      threads.emplace_back(produce, p);
    }
  }
  for (int i = 0; i < consumers; ++i) {
    if (i % 2 == 0) {
      fibers.push_back(spindle::go(consume));
    } else {
      threads.emplace_back(consume);
    }
  }
  producing.wait();
  c.close();
  for (auto& f : fibers) f.join();
  for (auto& t : threads) t.join();
  CHECK(count == total);
  CHECK(sum == static_cast<long long>(total) * (total - 1) / 2);
  int wrong = 0;
  for (auto& s : seen) wrong += s.load() != 1;
  CHECK(wrong == 0);
}

TEST_CASE("exactly-once delivery, N producers and M consumers, fibers and threads") {
  SUBCASE("unbuffered") { exactly_once(0); }
  SUBCASE("capacity 1") { exactly_once(1); }
  SUBCASE("capacity 64") { exactly_once(64); }
}

// timed_operations: the timed variants give up at their deadline and leave
// nothing queued.
void timed_operations() {
  spindle::chan<int> c(1);
  CHECK_FALSE(c.recv_for(1ms).has_value());
  CHECK(c.send_for(1, 1ms));
  CHECK_FALSE(c.send_for(2, 1ms));
  CHECK_FALSE(c.send_until(2, std::chrono::steady_clock::now()));
  CHECK(c.recv_until(std::chrono::system_clock::now() + 1h) == 1);
  CHECK(parked_senders(c) == 0);
  CHECK(parked_receivers(c) == 0);
}

TEST_CASE("timed operations give up at the deadline") {
  SUBCASE("from a plain thread") { timed_operations(); }
  SUBCASE("from a fiber") { spindle::go(timed_operations).join(); }
}

// A plain thread watches its waiter for a few microseconds before it sleeps
// on the futex (park.cpp, spin_until_woken): a deadline inside that window
// still times out, never early, and a value that comes after it still wakes
// the sleeping thread.
TEST_CASE("a plain thread's wait: a deadline inside its spin times out, a late value wakes it") {
  spindle::chan<int> c(0);
  const auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(c.recv_for(2us).has_value());
  CHECK(std::chrono::steady_clock::now() - start >= 2us);
  CHECK(parked_receivers(c) == 0);
  auto sender = spindle::go([c]() mutable {
    spindle::sleep_for(20ms);  // well past the spin: the receiver sleeps on its futex
    c.send(5);
  });
  CHECK(c.recv() == 5);
  sender.join();
}

TEST_CASE("a timed receive from a fiber gets a value sent before its deadline") {
  spindle::chan<int> c(0);
  auto receiver = spindle::go([c]() mutable { return c.recv_for(1h); });
  until([&] { return parked_receivers(c) == 1; });
  c.send(3);
  CHECK(receiver.join() == 3);
}

TEST_CASE("a value sent to a parked receiver wakes it; the handle outlives the sender") {
  std::optional<int> got;
  auto receiver = spindle::go([&] {
    spindle::chan<int> c(0);
    auto sender = spindle::go([c]() mutable { c.send(99); });
    got = c.recv();
    sender.join();
  });
  receiver.join();
  CHECK(got == 99);
}
