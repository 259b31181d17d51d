// tests/model/timed_park_model.cpp: a fiber's timed park, model-checked.
//
// lib/sched/park.hpp/.cpp, a fiber's park_then with a deadline: the fiber
// (here in chan_core::recv, its op linked under the channel lock) releases
// the lock and checks the waiter's state word; unless a waker has been
// already, it switches out, and its worker runs the after_switch step
// (finish_park): `then`, arm the deadline's timer, settle the state word
// (exchange to parked; ready the fiber if it was woken). A sender may take
// the lock, claim the waiter and wake it at any moment after the unlock; the
// event loop may fire the timer once it is armed (a thread that took over
// the processor does so even while the worker is still in finish_park).
// Both wake through the state word (exchange to woken; ready the fiber if
// it was parked). The resumed fiber cancels the timer, or, when the timer
// woke it, only waits out the fire (event_loop::await_fired: a fired timer
// is no longer queued), and returns, and the park record and waiter on its stack are
// gone. Every interleaving must keep:
//   - nothing touches the park record or the waiter once the fiber returned
//     (the worker's after_switch step, the timer firing, a waker's wake);
//   - the fiber is readied only once its context is saved, exactly once,
//     and runs on only after its park is complete (finish_park done: `then`
//     returned, the timer armed);
//   - the fiber reports "woken" exactly when the sender completed its op;
//   - the fiber is not left parked, nor a timer armed or firing, at the end.
// This model is sequentially consistent: the state word and the claim are
// locked read-modify-writes and the rest is ordered by release/acquire
// pairs (the lock, the run queues, the exchanges); what is checked here is
// the order of the steps. Its mutated versions are caught: a waker that
// readies a fiber still switching out (no state word); the code before the
// state word, whose `then` released the lock after the switch, with the
// timer armed before `then` (the bug tests/fuzz found:
// tests/sched/park_test.cpp) or after it but without the first fix's
// `arming` wait; and a worker that settles before arming the timer. With the state word, arming
// before `then` is harmless (checked too): no one can ready the fiber before the settling exchange,
// which is why the `arming` flag of the first fix is gone.
//
// Model step                 real code
//   F_UNLOCK                 park.hpp park_until: lock.unlock()
//   F_CHECK                  park.cpp wait_until_slow: state == woken ->
//                            return without switching
//   F_SWITCH                 block_fiber: switch_out(finish_park, record);
//                            the context is saved when the worker runs
//   W_STEP1, W_STEP2         park.cpp finish_park: then(arg); add_timer
//   W_SETTLE                 finish_park: settle() (exchange state, parked);
//                            ready(f) if it was woken
//   S_LOCK, S_CLAIM          chan_core.cpp send: lock, pop_claimed
//                            (try_claim), complete the op, unlock
//   S_WAKE                   park.cpp waiter::wake: exchange(state, woken);
//                            ready(f) if it was parked
//   L_FIRE, L_WAKE, L_CLEAR  event_loop.cpp fire_due -> fire_timed_park:
//                            try_claim, timed_out := true, wake(); then the
//                            loop clears the entry's `firing`
//   F_CANCEL, F_RETURN,      block_fiber after switch_out: await_fired if
//   F_RELOCK                 timed out, else cancel_timer (removes, or
//                            waits while firing); return; a timed-out recv
//                            re-locks to unlink its op
#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "checks.hpp"

namespace {

using model::u8;

constexpr int worker = 0, loop = 1, sender = 2, fiber = 3, nthreads = 4;
enum holder : u8 { nobody, parked_fiber, the_sender, resumed_fiber };
enum word : u8 { parking, parked, woken };  // waiter::state_

enum pc : u8 {
  W_IDLE,
  W_STEP1,
  W_STEP2,
  W_SETTLE,
  W_DONE,
  L_FIRE,
  L_WAKE,
  L_CLEAR,
  L_DONE,
  S_LOCK,
  S_CLAIM,
  S_WAKE,
  S_DONE,
  F_UNLOCK,
  F_CHECK,
  F_SWITCH,
  F_PARKED,
  F_RUN,
  F_CANCEL,
  F_RETURN,
  F_RELOCK,
  F_DONE,
};

struct state {
  u8 pc[nthreads];
  u8 lock;          // who holds the channel lock
  u8 linked;        // the fiber's op is in the channel's queue
  u8 claimed_by;    // waiter::claim_: 0 unclaimed, else the claimer's thread + 1
  u8 completed;     // the sender moved its value in
  u8 timed_out;     // timed_park::timed_out
  u8 word;          // waiter::state_
  u8 saved;         // the fiber's context is saved (it switched out)
  u8 readied;       // ready(f) calls so far
  u8 then_done;     // the after_switch step ran `then`
  u8 timer_queued;  // the entry is on the loop's wheel
  u8 timer_firing;  // timer_entry::firing
  u8 record_alive;  // the fiber's frame (waiter, park record) exists
  u8 broken;        // index into problems
};

constexpr const char* problems[] = {
    nullptr,
    "the park record or the waiter was touched after the fiber returned",
    "a fiber was readied before its context was saved",
    "a fiber was readied twice",
    "the fiber ran on before its park was complete",
    "the fiber's result disagrees with who claimed it",
};

struct timed_park_model {
  using state = ::state;
  bool waker_ignores_state = false;   // wake() readies at once (no state word)
  bool arm_before_then = false;       // finish_park: add_timer, then then()
  bool settle_before_arm = false;     // finish_park: then(), settle, add_timer
  bool unlock_in_then = false;        // the lock is held across the switch, `then` releases it
  bool timed_out_skips_wait = false;  // a timed-out fiber returns without awaiting the fire

  static state initial() {
    state s{};
    s.pc[worker] = W_IDLE;
    s.pc[loop] = L_FIRE;
    s.pc[sender] = S_LOCK;
    s.pc[fiber] = F_UNLOCK;
    s.lock = parked_fiber;
    s.linked = s.record_alive = 1;
    s.word = parking;
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
    if (s.timer_queued || s.timer_firing) return "a timer outlives the fiber's park";
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
    if (!n.record_alive && !n.broken) n.broken = 1;
  }
  // ready: scheduler::ready(f); the fiber becomes runnable.
  static void ready(state& n) {
    if (!n.saved && !n.broken) n.broken = 2;
    if (n.readied && !n.broken) n.broken = 3;
    n.readied = 1;
    if (n.pc[fiber] == F_PARKED) n.pc[fiber] = F_RUN;
  }
  // wake: waiter::wake() by the sender or the timer.
  void wake(state& n) const {
    touch_record(n);
    if (waker_ignores_state) return ready(n);
    const u8 prev = n.word;
    n.word = woken;
    if (prev == parked) ready(n);
  }

  // The worker's after_switch step, three steps in the configured order.
  enum action : u8 { run_then, arm, settle };
  void act(state& n, action a) const {
    touch_record(n);
    switch (a) {
      case run_then:
        n.then_done = 1;
        if (unlock_in_then) n.lock = nobody;
        return;
      case arm:
        n.timer_queued = 1;
        return;
      case settle:
        if (waker_ignores_state) return;
        if (std::exchange(n.word, parked) == woken) ready(n);
        return;
    }
  }
  action order(int i) const {
    static constexpr action merged[] = {run_then, arm, settle};
    static constexpr action arm_first[] = {arm, run_then, settle};
    static constexpr action settle_early[] = {run_then, settle, arm};
    if (arm_before_then) return arm_first[i];
    if (settle_before_arm) return settle_early[i];
    return merged[i];
  }
  static const char* label(action a) {
    return a == run_then ? "finish_park: then()"
           : a == arm    ? "finish_park: add_timer"
                         : "finish_park: settle";
  }

  void worker_step(const state& s, successors_t& out) const {
    if (s.pc[worker] < W_STEP1 || s.pc[worker] > W_SETTLE) return;
    state n = s;
    const action a = order(s.pc[worker] - W_STEP1);
    act(n, a);
    return go(out, n, worker, static_cast<pc>(s.pc[worker] + 1), label(a));
  }

  void loop_step(const state& s, successors_t& out) const {
    state n = s;
    switch (s.pc[loop]) {
      case L_FIRE:
        if (!s.timer_queued) return;
        touch_record(n);
        n.timer_queued = 0;
        n.timer_firing = 1;
        if (s.claimed_by) return go(out, n, loop, L_CLEAR, "timer fires: already claimed");
        n.claimed_by = loop + 1;
        n.timed_out = 1;
        return go(out, n, loop, L_WAKE, "timer fires: try_claim succeeds, timed_out := true");
      case L_WAKE:
        wake(n);
        return go(out, n, loop, L_CLEAR, "timer: wake()");
      case L_CLEAR:
        touch_record(n);
        n.timer_firing = 0;
        return go(out, n, loop, L_DONE, "loop: firing := 0");
      default:
        return;
    }
  }

  void sender_step(const state& s, successors_t& out) const {
    state n = s;
    switch (s.pc[sender]) {
      case S_LOCK:
        if (s.lock != nobody) return;
        n.lock = the_sender;
        return go(out, n, sender, S_CLAIM, "locks the channel");
      case S_CLAIM:
        n.lock = nobody;
        if (!s.linked || s.claimed_by) {
          n.linked = 0;
          return go(out, n, sender, S_DONE, "finds no claimable receiver, unlocks");
        }
        n.linked = 0;
        n.claimed_by = sender + 1;
        n.completed = 1;
        return go(out, n, sender, S_WAKE, "claims, hands over its value, unlocks");
      case S_WAKE:
        wake(n);
        return go(out, n, sender, S_DONE, "wake()");
      default:
        return;
    }
  }

  void fiber_step(const state& s, successors_t& out) const {
    state n = s;
    switch (s.pc[fiber]) {
      case F_UNLOCK:
        if (unlock_in_then) return go(out, n, fiber, F_CHECK, "park_until: keeps the lock");
        n.lock = nobody;
        return go(out, n, fiber, F_CHECK, "park_until: unlocks the channel");
      case F_CHECK:
        if (s.word == woken) return go(out, n, fiber, F_CANCEL, "state is woken: no switch");
        return go(out, n, fiber, F_SWITCH, "state is not woken");
      case F_SWITCH:
        n.saved = 1;
        n.pc[worker] = W_STEP1;
        return go(out, n, fiber, s.readied ? F_RUN : F_PARKED, "switch_out: context saved");
      case F_RUN:
        if (s.pc[worker] != W_IDLE && s.pc[worker] != W_DONE) n.broken = 4;
        n.saved = 0;
        return go(out, n, fiber, F_CANCEL, "resumed");
      case F_CANCEL:
        if (s.timed_out) {  // the timer woke it: fired, so no longer queued
          if (s.timer_firing && !timed_out_skips_wait) return;  // await_fired
          return go(out, n, fiber, F_RETURN, "await_fired");
        }
        if (s.timer_firing) return;  // cancel_timer waits out a fire in progress
        n.timer_queued = 0;
        return go(out, n, fiber, F_RETURN, "cancel_timer");
      case F_RETURN:
        n.record_alive = 0;
        if (!n.broken && (s.timed_out ? s.completed : !s.completed)) n.broken = 5;
        return go(out, n, fiber, s.timed_out ? F_RELOCK : F_DONE, "park returns");
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

TEST_CASE("timed park: then(), the timer and a waker never race the fiber's switch or return") {
  model::check_holds(timed_park_model{}, timed_park_model::initial(), "timed park");
}

TEST_CASE("timed park: with the state word, arming the timer before then() is harmless") {
  timed_park_model arm_first;
  arm_first.arm_before_then = true;
  model::check_holds(arm_first, timed_park_model::initial());
}

// The code the fuzzer broke: no state word, the lock released by `then`
// after the switch, and the timer armed before `then`.
TEST_CASE("timed park: the old order (timer armed before then(), no state word) is caught") {
  timed_park_model old_order;
  old_order.waker_ignores_state = true;
  old_order.unlock_in_then = true;
  old_order.arm_before_then = true;
  model::require_caught(old_order, timed_park_model::initial());
}

TEST_CASE("timed park: a waker that readies a fiber still switching out is caught (teeth)") {
  timed_park_model mutated;
  mutated.waker_ignores_state = true;
  model::require_caught(mutated, timed_park_model::initial());
}

// The first fix without its `arming` wait: `then` first, no state word.
TEST_CASE("timed park: then() before the timer, without the state word, is caught (teeth)") {
  timed_park_model mutated;
  mutated.waker_ignores_state = true;
  mutated.unlock_in_then = true;
  model::require_caught(mutated, timed_park_model::initial());
}

TEST_CASE("timed park: settling before the timer is armed is caught (teeth)") {
  timed_park_model mutated;
  mutated.settle_before_arm = true;
  model::require_caught(mutated, timed_park_model::initial());
}

TEST_CASE(
    "timed park: a timed-out fiber that returns while its timer still fires is caught (teeth)") {
  timed_park_model mutated;
  mutated.timed_out_skips_wait = true;
  model::require_caught(mutated, timed_park_model::initial());
}
