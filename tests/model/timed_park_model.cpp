// tests/model/timed_park_model.cpp: a fiber's timed park, model-checked.
//
// lib/sched/park.cpp, waiter::park_then from a fiber with a deadline: the
// fiber (here parked in chan_core::recv, holding the channel lock) switches
// out, and its worker runs the after_switch action (then_arm_after_switch):
// `then` releases the channel lock, the deadline's timer is armed, `arming`
// is cleared. A sender may take the lock, claim the waiter and ready the
// fiber; the event loop may fire the timer, claim the waiter and ready it.
// Whichever worker resumes the fiber waits for `arming` to clear
// (wait_until_armed), cancels the timer and returns, and the park record on
// its stack is gone. Every interleaving must keep:
//   - nothing touches the park record once park_then returned (the worker's
//     action, the timer firing);
//   - the fiber runs on only after `then` released the lock it parked with;
//   - no timer stays armed once the fiber has returned (terminal condition),
//     and the fiber is not left parked forever.
// This model is sequentially consistent: the protocol's memory ordering is
// the release/acquire pairs on `arming`, the lock and the run queues; what
// is checked here is the order of the steps. It found nothing new: its
// mutated version with the old order (arm the timer, then call `then`) is
// the bug tests/fuzz found (tests/sched/park_test.cpp).
//
// Model step                 real code
//   W_THEN, W_ARM, W_ARMED   park.cpp then_arm_after_switch: then(arg)
//                            (unlock_word), add_timer, arming := false
//   L_FIRE                   fire_timed_park on the loop thread: try_claim,
//                            timed_out := true, wake
//   S_LOCK .. S_WAKE         chan_core.cpp send: lock, pop_claimed
//                            (try_claim), complete the op, unlock, wake
//   F_WAIT, F_CANCEL,        park_then after park(): wait_until_armed,
//   F_RETURN, F_RELOCK       cancel_timer, return; a timed-out recv re-locks
//                            to unlink its op (chan_core.cpp recv)
#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "explorer.hpp"

namespace {

using model::u8;

constexpr int worker = 0, loop = 1, sender = 2, fiber = 3, nthreads = 4;
enum holder : u8 { nobody, parked_fiber, the_sender, resumed_fiber };

enum pc : u8 {
  W_THEN,
  W_ARM,
  W_ARMED,
  W_DONE,
  L_FIRE,
  L_DONE,
  S_LOCK,
  S_CLAIM,
  S_WAKE,
  S_DONE,
  F_PARKED,
  F_WAIT,
  F_CANCEL,
  F_RETURN,
  F_RELOCK,
  F_DONE,
};

struct state {
  u8 pc[nthreads];
  u8 lock;     // who holds the channel lock
  u8 linked;   // the fiber's op is in the channel's queue
  u8 claimed;  // waiter::claim_
  u8 timed_out;
  u8 timer_armed;   // in the event loop's heap
  u8 arming;        // timed_park::arming
  u8 record_alive;  // park_then's frame exists
  u8 broken;        // index into problems
};

constexpr const char* problems[] = {
    nullptr,
    "the worker touched the park record after park_then returned",
    "the timer fired on a park record that no longer exists",
    "the fiber ran on before then() released its lock",
};

struct timed_park_model {
  using state = ::state;
  bool arm_before_then = false;  // the old code: timer, then then(), no arming flag
  bool skip_arming_wait = false;

  static state initial() {
    state s{};
    s.pc[worker] = W_THEN;
    s.pc[loop] = L_FIRE;
    s.pc[sender] = S_LOCK;
    s.pc[fiber] = F_PARKED;
    s.lock = parked_fiber;
    s.linked = s.arming = s.record_alive = 1;
    return s;
  }

  void successors(const state& s, std::vector<std::pair<state, std::string>>& out) const {
    worker_step(s, out);
    loop_step(s, out);
    sender_step(s, out);
    fiber_step(s, out);
  }

  const char* invariant(const state& s) const { return problems[s.broken]; }

  const char* terminal(const state& s) const {
    if (s.pc[fiber] != F_DONE) return "the fiber stays parked forever";
    if (s.timer_armed) return "a timer stays armed after the fiber returned";
    return nullptr;
  }

 private:
  using successors_t = std::vector<std::pair<state, std::string>>;

  static void go(successors_t& out, state n, int t, pc to, const char* what) {
    static constexpr const char* names[] = {"worker", "loop", "sender", "fiber"};
    n.pc[t] = to;
    out.emplace_back(n, std::string(names[t]) + " " + what);
  }
  static void touch_record(state& n) {
    if (!n.record_alive) n.broken = 1;
  }

  void worker_step(const state& s, successors_t& out) const {
    state n = s;
    switch (s.pc[worker]) {
      case W_THEN:
        if (arm_before_then) {
          touch_record(n);
          n.timer_armed = 1;
          return go(out, n, worker, W_ARM, "add_timer");
        }
        touch_record(n);
        n.lock = nobody;
        return go(out, n, worker, W_ARM, "then(): unlocks the channel");
      case W_ARM:
        touch_record(n);
        if (arm_before_then) {
          n.lock = nobody;
          return go(out, n, worker, W_DONE, "then(): unlocks the channel");
        }
        n.timer_armed = 1;
        return go(out, n, worker, W_ARMED, "add_timer");
      case W_ARMED:
        touch_record(n);
        n.arming = 0;
        return go(out, n, worker, W_DONE, "arming := false");
      default:
        return;
    }
  }

  static void loop_step(const state& s, successors_t& out) {
    if (s.pc[loop] != L_FIRE || !s.timer_armed) return;
    state n = s;
    if (!s.record_alive) n.broken = 2;
    n.timer_armed = 0;
    if (!s.claimed) {
      n.claimed = n.timed_out = 1;
      if (n.pc[fiber] == F_PARKED) n.pc[fiber] = F_WAIT;
      return go(out, n, loop, L_DONE, "timer fires: claims, readies the fiber");
    }
    return go(out, n, loop, L_DONE, "timer fires: already claimed");
  }

  static void sender_step(const state& s, successors_t& out) {
    state n = s;
    switch (s.pc[sender]) {
      case S_LOCK:
        if (s.lock != nobody) return;
        n.lock = the_sender;
        return go(out, n, sender, S_CLAIM, "locks the channel");
      case S_CLAIM:
        n.lock = nobody;
        if (!s.linked || s.claimed) {
          n.linked = 0;
          return go(out, n, sender, S_DONE, "finds no claimable receiver, unlocks");
        }
        n.linked = 0;
        n.claimed = 1;
        return go(out, n, sender, S_WAKE, "claims, hands over its value, unlocks");
      case S_WAKE:
        if (n.pc[fiber] == F_PARKED) n.pc[fiber] = F_WAIT;
        return go(out, n, sender, S_DONE, "readies the fiber");
      default:
        return;
    }
  }

  void fiber_step(const state& s, successors_t& out) const {
    state n = s;
    switch (s.pc[fiber]) {
      case F_WAIT:
        if (s.lock == parked_fiber) n.broken = 3;
        if (s.arming && !skip_arming_wait && !arm_before_then) return;
        return go(out, n, fiber, F_CANCEL, "resumed, past wait_until_armed");
      case F_CANCEL:
        n.timer_armed = 0;
        return go(out, n, fiber, F_RETURN, "cancel_timer");
      case F_RETURN:
        n.record_alive = 0;
        return go(out, n, fiber, s.timed_out ? F_RELOCK : F_DONE, "park_then returns");
      case F_RELOCK:
        if (s.lock != nobody) return;
        n.linked = 0;
        return go(out, n, fiber, F_DONE, "re-locks, unlinks its op, unlocks");
      default:
        return;
    }
  }
};

}  // namespace

TEST_CASE("timed park: then(), the timer and a waker never race the fiber's return") {
  const model::result r = model::explore(timed_park_model{}, timed_park_model::initial());
  INFO(r.describe());
  CHECK_FALSE(r.violated);
  MESSAGE("timed park: " << r.states << " states");
}

TEST_CASE("timed park: arming the timer before then() is the bug the fuzzer found") {
  timed_park_model old_order;
  old_order.arm_before_then = true;
  const model::result r = model::explore(old_order, timed_park_model::initial());
  INFO(r.describe());
  REQUIRE(r.violated);
}

TEST_CASE("timed park: without wait_until_armed the worker arms a dead record (teeth)") {
  timed_park_model mutated;
  mutated.skip_arming_wait = true;
  const model::result r = model::explore(mutated, timed_park_model::initial());
  INFO(r.describe());
  REQUIRE(r.violated);
}
