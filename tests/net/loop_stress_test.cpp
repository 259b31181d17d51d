// tests/net/loop_stress_test.cpp: hunting lost submissions to the event loops.
//
// Plain threads and fibers submit requests to every processor's loop at once
// (a fiber's lands on its own processor's loop or on another's), while those
// loops' workers go to sleep in them and wake. Each request must run exactly
// once, on the loop it was submitted to, and wake its submitter: a lost
// uv_async_send or a drained-too-early queue shows as a hang (the meson
// timeout), a wrong count, or a safety-net wake (main.cpp).
#include <doctest/doctest.h>

#include <atomic>
#include <cstddef>
#include <random>
#include <spindle/spindle.hpp>
#include <thread>
#include <vector>

#include "io/event_loop.hpp"
#include "sched/park.hpp"
#include "sched/scheduler.hpp"

namespace {

using spindle::detail::event_loop;
using spindle::detail::loop_request;
using spindle::detail::scheduler;
using spindle::detail::waiter;

std::atomic<long> ran{0};
std::atomic<long> wrong_loop{0};

// probe: one request, on its submitter's stack until it has run.
struct probe : loop_request {
  waiter parked;
  event_loop* target = nullptr;
  int runs = 0;
};

void run_probe(loop_request* self, uv_loop_t* loop) noexcept {
  auto* p = static_cast<probe*>(self);
  if (&event_loop::of(loop) != p->target) wrong_loop.fetch_add(1);
  ++p->runs;
  ran.fetch_add(1, std::memory_order_relaxed);
  if (p->parked.try_claim()) p->parked.wake();
}

// round_trip: submits one probe to loop `index` and waits until it ran.
// Returns how many times it ran (1).
int round_trip(std::size_t index) {
  probe p;
  p.target = &scheduler::get().loop_of(index);
  p.run = run_probe;
  p.parked.park_then(
      [](void* arg) {
        auto* q = static_cast<probe*>(arg);
        q->target->submit(q);
      },
      &p);
  return p.runs;
}

}  // namespace

TEST_CASE("submissions from many threads and fibers to every loop at once") {
  const std::size_t loops = scheduler::get().procs();
  constexpr int threads = 6, fibers = 64, per_thread = 3000, per_fiber = 600;
  ran = 0;
  std::atomic<int> wrong_runs{0};
  auto submit_many = [&](int count, unsigned seed) {
    std::minstd_rand rng(seed);
    for (int i = 0; i < count; ++i) {
      if (round_trip(rng() % loops) != 1) wrong_runs.fetch_add(1);
      if (i % 97 == 0) spindle::yield();  // from a thread: returns at once
    }
  };
  std::vector<std::thread> plain;
  for (int t = 0; t < threads; ++t) plain.emplace_back(submit_many, per_thread, 1000u + t);
  std::vector<spindle::handle<void>> spawned;
  for (int f = 0; f < fibers; ++f) {
    spawned.push_back(spindle::go(submit_many, per_fiber, static_cast<unsigned>(f)));
  }
  for (auto& t : plain) t.join();
  for (auto& f : spawned) f.join();
  CHECK(ran.load() ==
        static_cast<long>(threads) * per_thread + static_cast<long>(fibers) * per_fiber);
  CHECK(wrong_runs.load() == 0);
  CHECK(wrong_loop.load() == 0);
}

TEST_CASE("submissions racing loops that fall asleep between them") {
  // One request at a time, with pauses long enough for the target's worker
  // to go idle and sleep inside its loop before the next one comes.
  const std::size_t loops = scheduler::get().procs();
  ran = 0;
  constexpr int rounds = 400;
  for (int i = 0; i < rounds; ++i) {
    CHECK(round_trip(static_cast<std::size_t>(i) % loops) == 1);
    if (i % 4 == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
  }
  auto from_fiber = spindle::go([loops] {
    int ok = 0;
    for (int i = 0; i < rounds; ++i) {
      ok += round_trip(static_cast<std::size_t>(i) % loops);
      if (i % 4 == 0) spindle::sleep_for(std::chrono::microseconds(300));
    }
    return ok;
  });
  CHECK(from_fiber.join() == rounds);
  CHECK(ran.load() == 2 * rounds);
  CHECK(wrong_loop.load() == 0);
}
