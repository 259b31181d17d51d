// lib/sched/contention_watch.hpp: when the balancer leaves a processor's
// fibers where they are (monitor.cpp, step 2).
//
// Spreading fibers over processors pays when they compute independently. It
// costs when they all pass messages through one primitive: a fanout of 1,000
// receivers on one channel took 150-350 us a round spread over two processors
// against 60 us on one, the processors spinning for the channel's lock and
// trading its cache lines. A lock held across a switch is released before
// the processor's next fiber continues (waiter::park_holding), so waiting
// for a primitive's lock (processor::lock_wait_ns) means fibers on
// different processors share it. Some waiting is the normal price of
// parallel work; a processor that spends a tenth of its time waiting is
// mostly passing a lock around (spread, the fanout spent a third of its CPU
// time spinning for the channel's lock). So:
//   - a pass that finds a processor's fibers waited for locks for
//     wait_share (1/10) of the time since the last pass or more puts the
//     processor on hold: the balancer does not move its fibers for
//     hold_off, which starts at min_hold_off and doubles, up to
//     max_hold_off, each time the waiting comes back;
//   - a pass after the balancer moved the processor's fibers that finds
//     them waiting less ends the doubling: spreading it paid, so the next
//     hold starts short again.
// A fanout is thus tried spread once after each hold; its contention sends
// it back on hold for twice as long, so the cost of trying fades. Fibers that
// compute, or share a lock only briefly, are balanced as before.
// A hold never keeps a long backlog in place (long_backlog): a processor
// whose queued fibers would keep it busy past the balancer's next pass, at
// its mean time per switch, is spread even while held. A fanout's queue is
// a thousand fibers of tens of nanoseconds each; a burst of computations
// that follows it on the same processor is not.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

namespace spindle::detail {

// long_backlog: whether `queued` fibers are more work than
// long_backlog_ns, at the processor's mean time per switch over the last
// pass (`switched` switches in `elapsed_ns`; none at all means its running
// fiber holds it, and anything queued waits).
inline constexpr std::int64_t long_backlog_ns = 1'000'000;
inline bool long_backlog(std::uint32_t queued, std::uint64_t switched,
                         std::int64_t elapsed_ns) noexcept {
  if (queued == 0) return false;
  if (switched == 0) return true;
  const std::int64_t per_switch = elapsed_ns / static_cast<std::int64_t>(switched);
  return per_switch >= long_backlog_ns / static_cast<std::int64_t>(queued);
}

class contention_watch {
 public:
  static constexpr std::int64_t wait_share = 10;
  static constexpr std::int64_t min_hold_off_ns = 10'000'000;
  static constexpr std::int64_t max_hold_off_ns = 1'000'000'000;

  // observe: one balancer pass at `now`, with the processor's total lock
  // wait. Returns true when it puts the processor on hold.
  bool observe(std::int64_t lock_wait_ns, std::int64_t now) noexcept {
    const std::int64_t waited = lock_wait_ns - lock_wait_ns_;
    const std::int64_t elapsed = now - last_pass_ns_;
    lock_wait_ns_ = lock_wait_ns;
    last_pass_ns_ = now;
    const bool spread = std::exchange(spread_, false);
    if (waited > 0 && waited * wait_share >= elapsed) {
      hold_off_ns_ = std::clamp(2 * hold_off_ns_, min_hold_off_ns, max_hold_off_ns);
      held_until_ns_ = now + hold_off_ns_;
      return true;
    }
    if (spread) hold_off_ns_ = 0;
    return false;
  }
  // may_spread: whether the balancer may move the processor's fibers now.
  bool may_spread(std::int64_t now) const noexcept { return now >= held_until_ns_; }
  // spread: the balancer moved some of the processor's fibers.
  void spread() noexcept { spread_ = true; }
  // hold_off_ns: the length of the current or last hold (0: none since
  // spreading last paid).
  std::int64_t hold_off_ns() const noexcept { return hold_off_ns_; }

 private:
  std::int64_t lock_wait_ns_ = 0;
  std::int64_t last_pass_ns_ = 0;
  std::int64_t hold_off_ns_ = 0;
  std::int64_t held_until_ns_ = 0;
  bool spread_ = false;
};

}  // namespace spindle::detail
