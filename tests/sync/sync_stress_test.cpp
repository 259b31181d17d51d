// tests/sync/sync_stress_test.cpp: hunting lost wake-ups in the sync primitives.
//
// Each test repeats a racy hand-over many times; a lost wake-up shows as a
// hang (the meson timeout), a wrong count, or a safety-net wake (main.cpp).
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <shared_mutex>
#include <spindle/spindle.hpp>
#include <thread>
#include <vector>

TEST_CASE("mutex handoff under heavy contention, fibers and threads") {
  constexpr int fibers = 16, threads = 2, per_party = 20000;
  spindle::mutex m;
  long counter = 0;
  auto work = [&] {
    for (int i = 0; i < per_party; ++i) {
      std::lock_guard guard(m);
      ++counter;
    }
  };
  std::vector<spindle::handle<void>> fs;
  std::vector<std::thread> ts;
  for (int i = 0; i < fibers; ++i) fs.push_back(spindle::go(work));
  for (int i = 0; i < threads; ++i) ts.emplace_back(work);
  for (auto& f : fs) f.join();
  for (auto& t : ts) t.join();
  CHECK(counter == long{fibers + threads} * per_party);
}

TEST_CASE("wait_group reused round after round") {
  constexpr int rounds = 2000, parties = 8;
  spindle::wait_group wg;
  std::atomic<int> done{0};
  for (int round = 0; round < rounds; ++round) {
    wg.add(parties);
    for (int i = 0; i < parties; ++i) {
      spindle::go([&] {
        ++done;
        wg.done();
      });
    }
    wg.wait();
  }
  CHECK(done == rounds * parties);
}

TEST_CASE("cond turn-taking between a thread and a fiber") {
  constexpr int rounds = 20000;
  spindle::mutex m;
  spindle::cond cv;
  int turn = 0;  // even: the thread's turn, odd: the fiber's
  auto player = [&](int parity) {
    for (int i = 0; i < rounds; ++i) {
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return turn % 2 == parity; });
      ++turn;
      cv.notify_one();
    }
  };
  auto fiber = spindle::go(player, 1);
  player(0);
  fiber.join();
  CHECK(turn == 2 * rounds);
}

TEST_CASE("semaphore handshake between fibers and a thread") {
  constexpr int rounds = 20000;
  spindle::semaphore to_fiber(0), to_thread(0);
  long sum = 0;
  auto fiber = spindle::go([&] {
    for (int i = 0; i < rounds; ++i) {
      to_fiber.acquire();
      ++sum;
      to_thread.release();
    }
  });
  for (int i = 0; i < rounds; ++i) {
    to_fiber.release();
    to_thread.acquire();
  }
  fiber.join();
  CHECK(sum == rounds);
}

TEST_CASE("rw_mutex writers and readers churn") {
  spindle::rw_mutex m;
  long value = 0;
  std::atomic<bool> torn{false};
  long mirror = 0;
  std::vector<spindle::handle<void>> fs;
  for (int i = 0; i < 12; ++i) {
    fs.push_back(spindle::go([&, i] {
      for (int r = 0; r < 3000; ++r) {
        if ((i + r) % 3 == 0) {
          std::lock_guard write(m);
          ++value;
          ++mirror;
        } else {
          std::shared_lock read(m);
          if (value != mirror) torn = true;
        }
      }
    }));
  }
  for (auto& f : fs) f.join();
  CHECK_FALSE(torn);
  CHECK(value == mirror);
}

TEST_CASE("timed semaphore and cond waits racing their wakers, fibers and threads") {
  using namespace std::chrono_literals;
  constexpr int permits = 5000;
  spindle::semaphore sem(0);
  std::atomic<int> taken{0};
  auto take = [&] {
    while (taken.load() < permits) {
      if (sem.try_acquire_for(20us)) ++taken;
    }
  };
  std::vector<std::thread> takers;
  std::vector<spindle::handle<void>> fiber_takers;
  for (int t = 0; t < 2; ++t) {
    takers.emplace_back(take);
    fiber_takers.push_back(spindle::go(take));
  }
  auto giver = spindle::go([&] {
    for (int i = 0; i < permits; ++i) {
      sem.release();
      if (i % 8 == 0) spindle::yield();
    }
  });
  giver.join();
  for (auto& t : takers) t.join();
  for (auto& f : fiber_takers) f.join();
  CHECK(taken == permits);
  CHECK_FALSE(sem.try_acquire());  // no permit lost, none created

  spindle::mutex m;
  spindle::cond cv;
  int produced = 0, consumed = 0;
  constexpr int items = 3000;
  auto consume = [&] {
    std::unique_lock lock(m);
    while (consumed < items) {
      if (cv.wait_for(lock, 20us, [&] { return produced > consumed; })) ++consumed;
    }
  };
  std::thread consumer(consume);
  auto fiber_consumer = spindle::go(consume);
  auto producer = spindle::go([&] {
    for (int i = 0; i < items; ++i) {
      std::lock_guard guard(m);
      ++produced;
      cv.notify_one();
    }
  });
  producer.join();
  consumer.join();
  fiber_consumer.join();
  CHECK(consumed == items);
}
