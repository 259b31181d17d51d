// lib/sched/contention_watch.hpp: when the balancer leaves a processor's
// fibers where they are (monitor.cpp, step 2).
//
// Spreading fibers over processors pays when they compute independently. It
// costs when they all pass messages through one primitive: a fanout of 1,000
// receivers on one channel took 150-350 us a round spread over two processors
// against 60 us on one, the processors spinning for the channel's lock and
// trading its cache lines. A spinlock is never held across a switch, so
// contention on a primitive's lock (processor::lock_contention) means fibers
// on different processors share it. That is the signal:
//   - a pass that finds a processor's fibers contended (at least
//     min_contended acquisitions, and one per contended_share switches or
//     more) puts the processor on hold: the balancer does not move its
//     fibers for hold_off, which starts at min_hold_off and doubles, up to
//     max_hold_off, each time contention comes back;
//   - a pass after the balancer moved the processor's fibers that finds no
//     contention ends the doubling: spreading it paid, so the next hold
//     starts short again.
// A fanout is thus tried spread once after each hold; its contention sends
// it back on hold for twice as long, so the cost of trying fades. Fibers that
// yield or compute share no lock and are balanced as before.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

namespace spindle::detail {

class contention_watch {
 public:
  static constexpr std::uint64_t min_contended = 8;
  static constexpr std::uint64_t contended_share = 16;
  static constexpr std::int64_t min_hold_off_ns = 10'000'000;
  static constexpr std::int64_t max_hold_off_ns = 1'000'000'000;

  // observe: one balancer pass at `now`, with the processor's counters.
  // Returns true when it puts the processor on hold.
  bool observe(std::uint64_t contended, std::uint64_t switches, std::int64_t now) noexcept {
    const std::uint64_t new_contended = contended - contended_;
    const std::uint64_t new_switches = switches - switches_;
    contended_ = contended;
    switches_ = switches;
    const bool spread = std::exchange(spread_, false);
    if (new_contended >= min_contended && new_contended * contended_share >= new_switches) {
      hold_off_ns_ = std::clamp(2 * hold_off_ns_, min_hold_off_ns, max_hold_off_ns);
      held_until_ns_ = now + hold_off_ns_;
      return true;
    }
    if (spread) hold_off_ns_ = 0;
    return false;
  }
  // hold_off_ns: the length of the current or last hold (0: none since
  // spreading last paid).
  std::int64_t hold_off_ns() const noexcept { return hold_off_ns_; }
  // may_spread: whether the balancer may move the processor's fibers now.
  bool may_spread(std::int64_t now) const noexcept { return now >= held_until_ns_; }
  // spread: the balancer moved some of the processor's fibers.
  void spread() noexcept { spread_ = true; }

 private:
  std::uint64_t contended_ = 0;
  std::uint64_t switches_ = 0;
  std::int64_t hold_off_ns_ = 0;
  std::int64_t held_until_ns_ = 0;
  bool spread_ = false;
};

}  // namespace spindle::detail
