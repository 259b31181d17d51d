// lib/chan/select.cpp: select over several channel operations (Go's selectgo).
//
// Vocabulary
//   case        one chan_op of the select: a send or a receive on a channel.
//               A case on a nil channel, or disabled, takes no part.
//   poll order  a uniformly random permutation of the cases (Fisher-Yates
//               over a per-thread xorshift generator): the order pass 1 tries
//               them in, which makes the choice among ready cases uniform.
//   lock order  the cases sorted by channel address; each distinct channel is
//               locked once, in that order, so two selects never deadlock.
//
// Protocol (Go's three passes; chan_core.cpp describes the single-op park)
//   1. Lock every channel in lock order. Poll the cases in poll order with
//      the same locked steps a single send/recv uses; the first that can
//      complete does, and select unlocks everything, wakes the partner it
//      completed (if any), and returns that case. None ready and a default
//      case: unlock, return select_default.
//   2. Link every case's op into its channel's queue, all owned by one
//      waiter on this stack, release every channel lock (reverse order) and
//      block in waiter::wait_until. A waker on any channel may then claim the
//      waiter (try_claim: exactly one case wins), complete that op under its
//      channel's lock, unlock and wake it, even before the fiber has switched
//      out: the waiter's state word (park.hpp) makes sure it is readied once,
//      after its context is saved. Wakers on the other channels fail to claim
//      and drop the entries they find (Go's selectDone CAS in waitq.dequeue).
//   3. After the wake (or the deadline), lock all channels again and unlink
//      the entries nobody dropped; the one op whose status is no longer
//      pending is the case that fired. On timeout none is.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>

#include "chan/chan_core.hpp"
#include "spindle/error.hpp"

namespace spindle::detail {
namespace {

std::uint64_t seed_random() noexcept {
  static std::atomic<std::uint64_t> counter{0x9e3779b97f4a7c15ull};
  std::uint64_t z = counter.fetch_add(0x9e3779b97f4a7c15ull, std::memory_order_relaxed);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return (z ^ (z >> 31)) | 1;
}

// random_below: a number in [0, bound), from a per-thread xorshift64*. The
// state is touched only here, never across a blocking call.
[[gnu::noinline]] std::uint32_t random_below(std::uint32_t bound) noexcept {
  thread_local std::uint64_t state = seed_random();
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  auto r = static_cast<std::uint32_t>((state * 0x2545f4914f6cdd1dull) >> 32);
  return static_cast<std::uint32_t>((std::uint64_t{r} * bound) >> 32);
}

// locked_cases: the channels of the active cases in lock order; lock() takes
// each distinct channel once (Go's sellock), unlock() releases them in
// reverse (selunlock).
class locked_cases {
 public:
  locked_cases(chan_op* ops, const std::uint16_t* order, std::size_t count) noexcept
      : ops_(ops), order_(order), count_(count) {}

  void lock() noexcept {
    for (std::size_t i = 0; i < count_; ++i) {
      if (is_first_of_channel(i)) channel_at(i).lock().lock();
    }
  }
  void unlock() noexcept {
    for (std::size_t i = count_; i-- > 0;) {
      if (is_first_of_channel(i)) channel_at(i).lock().unlock();
    }
  }

 private:
  channel& channel_at(std::size_t i) const noexcept { return channel::of(ops_[order_[i]].channel); }
  bool is_first_of_channel(std::size_t i) const noexcept {
    return i == 0 || ops_[order_[i]].channel != ops_[order_[i - 1]].channel;
  }

  chan_op* ops_;
  const std::uint16_t* order_;
  std::size_t count_;
};

// sleep_until_deadline: a select whose every case is disabled and which has a
// deadline simply waits for it (nobody can claim its waiter but the deadline).
void sleep_until_deadline(time_point deadline) noexcept {
  waiter self;
  self.wait_until(deadline);
}

// nothing_enabled: the outcome of a select without an enabled case.
std::size_t nothing_enabled(bool has_default, time_point deadline) {
  if (has_default) return select_default;
  if (deadline == no_deadline) {
    throw usage_error("select with no enabled case and no timeout would block forever");
  }
  sleep_until_deadline(deadline);
  return select_timeout;
}

// poll: pass 1, with every channel locked. Completes the first ready case in
// poll order, unlocks, wakes its partner and returns its index; returns
// `count` (still locked) when none is ready.
std::size_t poll(chan_op* ops, const std::uint16_t* poll_order, std::size_t active,
                 locked_cases& locks, std::size_t count) {
  for (std::size_t i = 0; i < active; ++i) {
    chan_op& op = ops[poll_order[i]];
    channel& c = channel::of(op.channel);
    waiter* partner = nullptr;
    op_status status = op.is_send ? c.poll_send(op, partner) : c.poll_recv(op, partner);
    if (status == op_status::would_block) continue;
    locks.unlock();
    if (partner) partner->wake();
    if (op.is_send && status == op_status::closed) raise_send_on_closed();
    op.status = status;
    return poll_order[i];
  }
  return count;
}

// wait_for_case: passes 2 and 3, entered with every channel locked. Returns
// the index of the case that fired, or select_timeout.
std::size_t wait_for_case(chan_op* ops, const std::uint16_t* lock_order, std::size_t active,
                          locked_cases& locks, time_point deadline) {
  waiter self;
  for (std::size_t i = 0; i < active; ++i) {
    chan_op& op = ops[lock_order[i]];
    op.owner = &self;
    op.status = op_status::pending;
    channel::of(op.channel).enqueue(op);
  }
  locks.unlock();
  self.wait_until(deadline);

  std::size_t winner = select_timeout;
  locks.lock();
  for (std::size_t i = 0; i < active; ++i) {
    chan_op& op = ops[lock_order[i]];
    channel::of(op.channel).dequeue(op);
    if (op.status != op_status::pending) winner = lock_order[i];
  }
  locks.unlock();
  if (winner != select_timeout && ops[winner].is_send && ops[winner].status == op_status::closed) {
    raise_send_on_closed();
  }
  return winner;
}

}  // namespace

std::size_t select_core(chan_op* ops, std::size_t count, std::uint16_t* scratch, bool has_default,
                        time_point deadline) {
  std::uint16_t* poll_order = scratch;
  std::uint16_t* lock_order = scratch + count;
  std::size_t active = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (ops[i].enabled && ops[i].channel != nullptr) {
      poll_order[active++] = static_cast<std::uint16_t>(i);
    }
  }
  if (active == 0) return nothing_enabled(has_default, deadline);
  for (std::size_t i = active - 1; i > 0; --i) {
    std::swap(poll_order[i], poll_order[random_below(static_cast<std::uint32_t>(i + 1))]);
  }
  std::copy(poll_order, poll_order + active, lock_order);
  std::sort(lock_order, lock_order + active, [ops](std::uint16_t a, std::uint16_t b) {
    return std::less<const chan_core*>()(ops[a].channel, ops[b].channel);
  });

  locked_cases locks(ops, lock_order, active);
  locks.lock();
  if (std::size_t fired = poll(ops, poll_order, active, locks, count); fired != count) {
    return fired;
  }
  if (has_default) {
    locks.unlock();
    return select_default;
  }
  return wait_for_case(ops, lock_order, active, locks, deadline);
}

}  // namespace spindle::detail
