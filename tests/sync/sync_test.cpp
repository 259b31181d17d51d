// tests/sync/sync_test.cpp: wait_group, mutex, rw_mutex, cond, once, semaphore,
// each from fibers and plain threads mixed.
#include <doctest/doctest.h>

#include <atomic>
#include <mutex>
#include <shared_mutex>
#include <spindle/spindle.hpp>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// run_mixed: runs body(i) for i in [0, fibers + threads), the first `fibers`
// on fibers and the rest on plain threads, and waits for all.
template <class Body>
void run_mixed(int fibers, int threads, Body body) {
  std::vector<spindle::handle<void>> fs;
  std::vector<std::thread> ts;
  for (int i = 0; i < fibers; ++i) fs.push_back(spindle::go(body, i));
  for (int i = 0; i < threads; ++i) ts.emplace_back(body, fibers + i);
  for (auto& f : fs) f.join();
  for (auto& t : ts) t.join();
}

}  // namespace

TEST_CASE("wait_group with fibers and threads") {
  constexpr int fibers = 200, threads = 4;
  spindle::wait_group wg;
  std::atomic<int> finished{0};
  wg.add(fibers + threads);
  std::vector<std::thread> ts;
  for (int i = 0; i < fibers; ++i) {
    spindle::go([&] {
      spindle::yield();
      ++finished;
      wg.done();
    });
  }
  for (int i = 0; i < threads; ++i) {
    ts.emplace_back([&] {
      ++finished;
      wg.done();
    });
  }
  std::atomic<int> waiters_done{0};
  run_mixed(4, 2, [&](int) {
    wg.wait();
    if (finished == fibers + threads) ++waiters_done;
  });
  wg.wait();
  for (auto& t : ts) t.join();
  CHECK(waiters_done == 6);
  CHECK(wg.wait_for(0ms));
}

TEST_CASE("wait_group: a negative counter is a usage error; wait on zero returns") {
  spindle::wait_group wg;
  wg.wait();
  CHECK_THROWS_WITH_AS(wg.done(), "negative wait_group counter", spindle::usage_error);
}

TEST_CASE("mutex-protected counter with 1,000 fibers (and 4 threads)") {
  spindle::mutex m;
  long counter = 0;
  constexpr int per_party = 200;
  run_mixed(1000, 4, [&](int) {
    for (int i = 0; i < per_party; ++i) {
      std::lock_guard guard(m);
      ++counter;
      if (i % 16 == 0) spindle::yield();  // hold the lock across a switch now and then
    }
  });
  CHECK(counter == 1004L * per_party);
}

TEST_CASE("mutex: try_lock, unique_lock, and unlock of an unlocked mutex") {
  spindle::mutex m;
  CHECK(m.try_lock());
  CHECK_FALSE(m.try_lock());
  bool other_got_it = spindle::go([&] { return m.try_lock(); }).join();
  CHECK_FALSE(other_got_it);
  m.unlock();
  CHECK_THROWS_WITH_AS(m.unlock(), "unlock of unlocked mutex", spindle::usage_error);
  std::unique_lock lock(m);
  CHECK(lock.owns_lock());
}

TEST_CASE("rw_mutex: readers share, writers exclude") {
  spindle::rw_mutex m;
  std::atomic<int> readers{0}, writers{0};
  std::atomic<bool> overlap{false}, readers_met{false};
  long value = 0;
  run_mixed(40, 4, [&](int i) {
    for (int round = 0; round < 100; ++round) {
      if ((i + round) % 4 == 0) {
        std::lock_guard write(m);
        if (++writers != 1 || readers != 0) overlap = true;
        ++value;
        spindle::yield();
        --writers;
      } else {
        std::shared_lock read(m);
        if (++readers > 1) readers_met = true;
        if (writers != 0) overlap = true;
        spindle::yield();
        --readers;
      }
    }
  });
  CHECK_FALSE(overlap);
  CHECK(value == 44 * 100 / 4);
  CHECK(m.try_lock());
  CHECK_FALSE(m.try_lock_shared());
  m.unlock();
  CHECK(m.try_lock_shared());
  CHECK_FALSE(m.try_lock());
  m.unlock_shared();
  CHECK_THROWS_AS(m.unlock(), spindle::usage_error);
  CHECK_THROWS_AS(m.unlock_shared(), spindle::usage_error);
}

TEST_CASE("cond broadcast wakes every waiter, fibers and threads") {
  spindle::mutex m;
  spindle::cond cv;
  bool go_flag = false;
  int waiting = 0, woke = 0;
  constexpr int fibers = 50, threads = 4;
  spindle::wait_group all_waiting;
  all_waiting.add(fibers + threads);
  std::vector<spindle::handle<void>> fs;
  std::vector<std::thread> ts;
  auto wait_for_flag = [&] {
    std::unique_lock lock(m);
    ++waiting;
    all_waiting.done();
    cv.wait(lock, [&] { return go_flag; });
    ++woke;
  };
  for (int i = 0; i < fibers; ++i) fs.push_back(spindle::go(wait_for_flag));
  for (int i = 0; i < threads; ++i) ts.emplace_back(wait_for_flag);
  all_waiting.wait();
  {
    std::lock_guard guard(m);
    CHECK(waiting == fibers + threads);
    go_flag = true;
  }
  cv.notify_all();
  for (auto& f : fs) f.join();
  for (auto& t : ts) t.join();
  CHECK(woke == fibers + threads);
}

TEST_CASE("cond notify_one hands over one item at a time") {
  spindle::mutex m;
  spindle::cond cv;
  int items = 0, consumed = 0;
  constexpr int total = 500;
  auto consumer = [&](int) {
    for (;;) {
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return items > 0 || consumed + items >= total; });
      if (items == 0) return;
      --items;
      ++consumed;
    }
  };
  std::vector<spindle::handle<void>> fs;
  for (int i = 0; i < 8; ++i) fs.push_back(spindle::go(consumer, i));
  std::thread t(consumer, 8);
  for (int i = 0; i < total; ++i) {
    std::lock_guard guard(m);
    ++items;
    cv.notify_one();
  }
  cv.notify_all();
  for (auto& f : fs) f.join();
  t.join();
  CHECK(consumed == total);
}

// timed_waits: every timed wait gives up at its deadline and stays usable.
void timed_waits() {
  spindle::mutex m;
  spindle::cond cv;
  std::unique_lock lock(m);
  CHECK(cv.wait_for(lock, 1ms) == spindle::cond_status::timeout);
  CHECK(lock.owns_lock());
  CHECK_FALSE(cv.wait_for(lock, 1ms, [] { return false; }));
  CHECK(cv.wait_until(lock, std::chrono::steady_clock::now(), [] { return true; }));

  spindle::wait_group pending;
  pending.add(1);
  CHECK_FALSE(pending.wait_for(1ms));
  pending.done();
  CHECK(pending.wait_for(1h));

  spindle::semaphore none(0);
  CHECK_FALSE(none.try_acquire_for(1ms));
  none.release();
  CHECK(none.try_acquire_until(std::chrono::system_clock::now() + 1h));
}

TEST_CASE("timed waits give up at the deadline") {
  SUBCASE("from a plain thread") { timed_waits(); }
  SUBCASE("from a fiber") { spindle::go(timed_waits).join(); }
}

TEST_CASE("once runs the function exactly once under a race") {
  spindle::once init;
  std::atomic<int> runs{0};
  std::atomic<int> saw_done{0};
  run_mixed(100, 4, [&](int) {
    init.call([&] {
      spindle::yield();
      ++runs;
    });
    if (init.done()) ++saw_done;
  });
  CHECK(runs == 1);
  CHECK(saw_done == 104);
}

TEST_CASE("once: a throwing call lets the next caller try") {
  spindle::once init;
  CHECK_THROWS_AS(init.call([] { throw std::runtime_error("first"); }), std::runtime_error);
  CHECK_FALSE(init.done());
  int runs = 0;
  init.call([&](int n) { runs += n; }, 1);
  init.call([&](int n) { runs += n; }, 1);
  CHECK(runs == 1);
}

TEST_CASE("semaphore bounds concurrency") {
  spindle::semaphore slots(3);
  std::atomic<int> inside{0}, most{0};
  run_mixed(60, 3, [&](int) {
    for (int i = 0; i < 20; ++i) {
      slots.acquire();
      int now = ++inside;
      int seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      spindle::yield();
      --inside;
      slots.release();
    }
  });
  CHECK(most <= 3);
  CHECK(slots.try_acquire());
  CHECK(slots.try_acquire());
  CHECK(slots.try_acquire());
  CHECK_FALSE(slots.try_acquire());
  CHECK_FALSE(slots.try_acquire_for(1ms));
  slots.release(3);
  CHECK(slots.try_acquire_for(1h));
}
