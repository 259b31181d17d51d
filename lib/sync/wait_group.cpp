// lib/sync/wait_group.cpp: spindle::wait_group.
//
// The usual ending of a wait_group is its owner's wait() returning and the
// wait_group going out of scope while the fiber that called the last done()
// is still inside add(). So add() must not touch the object after the
// counter reaches zero unless someone is parked in wait() (and a parked
// waiter keeps the object alive until it is woken). Hence Go's layout: one
// atomic word holds the counter and the number of parked waiters.
//
// Protocol
//   wait: W1. counter zero: return (acquire load).
//         W2. under lock_: CAS the word from a state with a non-zero counter
//             to the same state with one more waiter (a CAS failure means the
//             counter changed: re-read, maybe return); queue a node; park.
//   add:  A1. fetch_add the delta into the counter (acq_rel).
//         A2. counter > 0, or no waiters: return without touching anything.
//         A3. counter == 0 with waiters: under lock_, pop every node,
//             subtract their number from the waiter count, unlock, wake them.
//   No lost wake-up: a waiter's increment and its queueing happen in one
//   critical section, and the increment is a CAS against a non-zero counter;
//   so an add() that zeroes the counter either sees the waiter counted (and
//   takes lock_, after which the node is queued) or makes the CAS fail.
//   A timed-out waiter unlinks its node and uncounts itself under lock_,
//   unless a waker already popped (and uncounted) it.
#include <mutex>

#include "spindle/error.hpp"
#include "spindle/sync.hpp"
#include "sync/wait_list.hpp"

namespace spindle {
namespace {

constexpr std::uint64_t one_waiter = 1;
constexpr int counter_shift = 32;

std::int32_t counter_of(std::uint64_t state) noexcept {
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(state >> counter_shift));
}
std::uint32_t waiters_of(std::uint64_t state) noexcept { return static_cast<std::uint32_t>(state); }

}  // namespace

void wait_group::add(std::ptrdiff_t delta) {
  std::uint64_t step = static_cast<std::uint64_t>(delta) << counter_shift;
  std::uint64_t state = state_.fetch_add(step, std::memory_order_acq_rel) + step;
  if (counter_of(state) < 0) throw usage_error("negative wait_group counter");
  if (counter_of(state) > 0 || waiters_of(state) == 0) return;
  detail::wake_list woken;
  {
    detail::primitive_lock_ref lock(lock_);
    std::lock_guard guard(lock);
    std::uint64_t popped = 0;
    while (detail::wait_node* n = waiters_.head) {
      detail::unlink(waiters_, *n);
      ++popped;
      if (n->parked.try_claim()) woken.append(*n);
    }
    state_.fetch_sub(popped * one_waiter, std::memory_order_relaxed);
  }
  woken.wake_all();
}

void wait_group::wait() { wait_until_deadline(detail::no_deadline); }

bool wait_group::wait_until_deadline(detail::time_point deadline) {
  if (counter_of(state_.load(std::memory_order_acquire)) == 0) return true;
  detail::primitive_lock_ref lock(lock_);
  lock.lock();
  std::uint64_t state = state_.load(std::memory_order_acquire);
  do {
    if (counter_of(state) == 0) {
      lock.unlock();
      return true;
    }
  } while (!state_.compare_exchange_weak(state, state + one_waiter, std::memory_order_acquire));
  detail::wait_node self;
  detail::push_back(waiters_, self);
  if (self.parked.park_until(lock, deadline)) return true;
  std::lock_guard guard(lock);
  if (self.linked) {
    detail::unlink(waiters_, self);
    state_.fetch_sub(one_waiter, std::memory_order_relaxed);
  }
  return false;
}

}  // namespace spindle
