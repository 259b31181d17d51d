// tests/model/claim_model.cpp: the waiter claim protocol, model-checked.
//
// The protocol is in lib/sched/park.hpp (try_claim, wait_until) with its
// users in lib/chan/select.cpp: a plain thread B blocks in a select with a
// receive case on each of two channels and a deadline; a sender on each
// channel (A0, A1) finds B's entry in its channel's queue. Exactly one
// party may complete B's select: one of the senders (moving its value into
// B's case), or B's own deadline. Every interleaving under x86-TSO must keep:
//   - at most one successful claim;
//   - B returns "woken" only with exactly one case completed, and "timed
//     out" only with none (a value moved into a waiter that then reports a
//     timeout would be lost);
//   - no sender completes a case after B has returned (B's stack is gone);
//   - B never sleeps forever (terminal condition).
// A fiber in B's place parks through the waiter's state word instead of the
// futex; the claim is the same CAS, and timed_park_model.cpp checks the
// fiber's side (the switch, the timer, the state word).
//
// Model step                 real code
//   B_UNLOCK0/1              select.cpp wait_for_case: locks.unlock()
//                            releases every channel lock before blocking
//                            (spinlock unlock: a store), then
//                            waiter::wait_until -> wait_until_slow
//   B_CHECK, B_FUTEX,        park.cpp block_thread_until: state_ load (is it
//   SLEEP_TIMED              woken?), timed futex_wait on state_ (may return
//                            at the deadline)
//   B_DEADLINE               the deadline passed: try_claim; on failure a
//                            waker owns the waiter: B_WAKEWAIT, B_FUTEX2,
//                            SLEEP wait for woken without a deadline
//   B_RELOCK0/1, B_SCAN      wait_for_case: lock every channel again, unlink
//                            the entries nobody dropped, read the statuses
//   A_LOCK, A_POP            chan_core.cpp poll_send under the channel lock:
//                            op_queue::pop_claimed unlinks the entry and
//   A_CLAIM                  calls waiter::try_claim (CAS unclaimed->claimed)
//   A_COMPLETE, A_UNLOCK     move the value into the receiver's slot, set
//                            status (plain stores), unlock
//   A_WAKE, A_FUTEX          park.cpp waiter::wake for a thread: state_ :=
//                            woken (release), FUTEX_WAKE
#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "checks.hpp"

namespace {

using model::u8;

constexpr int waiter_thread = 2, nthreads = 3;  // senders are threads 0 and 1
enum var : int { CLAIM, STATE, STATUS0, STATUS1, LOCK0, LOCK1, nvars };

enum pc : u8 {
  A_LOCK,
  A_POP,
  A_CLAIM,
  A_CLAIM_STORE,
  A_COMPLETE,
  A_UNLOCK,
  A_WAKE,
  A_FUTEX,
  A_UNLOCK_NONE,
  A_DONE,
  B_UNLOCK0,
  B_UNLOCK1,
  B_CHECK,
  B_FUTEX,
  SLEEP_TIMED,
  B_DEADLINE,
  B_WAKEWAIT,
  B_FUTEX2,
  SLEEP,
  B_RELOCK0,
  B_RELOCK1,
  B_SCAN,
  B_FINAL0,
  B_FINAL1,
  B_DONE,
};

struct state {
  model::tso<nthreads, nvars> mem;
  u8 pc[nthreads];
  u8 linked[2];   // B's entry in channel i's queue (guarded by lock i)
  u8 claims;      // ghost: successful claims
  u8 expired;     // B: its deadline has passed
  u8 timed_out;   // B: park_until returned false
  u8 verdict;     // B_SCAN's finding (an index into verdicts, 0: fine)
  u8 late_write;  // ghost: a sender completed a case after B returned
};

constexpr const char* verdicts[] = {
    nullptr,
    "B returned woken without exactly one completed case",
    "B returned timed out, yet a case was completed (a value lost)",
};

struct claim_model {
  using state = ::state;
  bool claim_is_load_then_store = false;  // try_claim without the CAS
  bool deadline_skips_claim = false;      // time out without try_claim

  static state initial() {
    state s{};
    s.mem.memory[LOCK0] = s.mem.memory[LOCK1] = 1;  // B enters park holding both
    s.linked[0] = s.linked[1] = 1;
    s.pc[0] = s.pc[1] = A_LOCK;
    s.pc[waiter_thread] = B_UNLOCK0;
    return s;
  }

  void successors(const state& s, std::vector<std::pair<state, std::string>>& out) const {
    for (int t = 0; t < nthreads; ++t) {
      model::add_flush(s, t, name(t), out);
      if (t == waiter_thread) {
        waiter_step(s, out);
      } else {
        sender_step(s, t, out);
      }
    }
  }

  const char* invariant(const state& s) const {
    if (s.claims > 1) return "two parties claimed one waiter";
    if (s.late_write) return "a sender completed a case after the waiter returned";
    return verdicts[s.verdict];
  }

  const char* terminal(const state& s) const {
    if (s.pc[waiter_thread] != B_DONE) return "the waiter sleeps forever";
    return nullptr;
  }

 private:
  using successors_t = std::vector<std::pair<state, std::string>>;

  static std::string name(int t) { return t == waiter_thread ? "B" : "A" + std::to_string(t); }
  static void go(successors_t& out, state n, int t, pc to, const char* what) {
    n.pc[t] = to;
    out.emplace_back(n, name(t) + " " + what);
  }
  static bool lock(state& n, int t, int v) {
    if (!n.mem.drained(t) || n.mem.memory[v] != 0) return false;
    n.mem.memory[v] = 1;
    return true;
  }

  void sender_step(const state& s, int i, successors_t& out) const {
    const auto& m = s.mem;
    state n = s;
    switch (s.pc[i]) {
      case A_LOCK:
        if (!lock(n, i, LOCK0 + i)) return;
        return go(out, n, i, A_POP, "locks its channel");
      case A_POP:
        if (!s.linked[i]) return go(out, n, i, A_UNLOCK_NONE, "finds no entry");
        n.linked[i] = 0;
        return go(out, n, i, A_CLAIM, "unlinks B's entry");
      case A_CLAIM:
        if (claim_is_load_then_store) {
          if (m.load(i, CLAIM) != 0) return go(out, n, i, A_UNLOCK_NONE, "sees claimed: drops");
          return go(out, n, i, A_CLAIM_STORE, "sees unclaimed");
        }
        if (!m.drained(i)) return;
        if (m.memory[CLAIM] != 0) return go(out, n, i, A_UNLOCK_NONE, "try_claim fails: drops");
        n.mem.memory[CLAIM] = 1;
        ++n.claims;
        return go(out, n, i, A_COMPLETE, "try_claim succeeds");
      case A_CLAIM_STORE:
        if (!n.mem.store(i, CLAIM, 1)) return;
        ++n.claims;
        return go(out, n, i, A_COMPLETE, "stores claimed");
      case A_COMPLETE:
        if (!n.mem.store(i, STATUS0 + i, 1)) return;
        if (s.pc[waiter_thread] == B_DONE) n.late_write = 1;
        return go(out, n, i, A_UNLOCK, "moves its value in, status := done");
      case A_UNLOCK:
        if (!n.mem.store(i, LOCK0 + i, 0)) return;
        return go(out, n, i, A_WAKE, "unlocks");
      case A_WAKE:
        if (!n.mem.store(i, STATE, 1)) return;
        return go(out, n, i, A_FUTEX, "state_ := woken");
      case A_FUTEX:
        if (!m.drained(i)) return;
        if (s.pc[waiter_thread] == SLEEP_TIMED) n.pc[waiter_thread] = B_CHECK;
        if (s.pc[waiter_thread] == SLEEP) n.pc[waiter_thread] = B_WAKEWAIT;
        return go(out, n, i, A_DONE, "FUTEX_WAKE");
      case A_UNLOCK_NONE:
        if (!n.mem.store(i, LOCK0 + i, 0)) return;
        return go(out, n, i, A_DONE, "unlocks");
      case A_DONE:
        return;
    }
  }

  void waiter_step(const state& s, successors_t& out) const {
    const int b = waiter_thread;
    const auto& m = s.mem;
    state n = s;
    switch (s.pc[b]) {
      case B_UNLOCK0:
      case B_UNLOCK1: {
        const int i = s.pc[b] - B_UNLOCK0;
        if (!n.mem.store(b, LOCK0 + i, 0)) return;
        return go(out, n, b, i == 0 ? B_UNLOCK1 : B_CHECK, "unlocks a channel");
      }
      case B_CHECK:
        if (m.load(b, STATE) != 0) return go(out, n, b, B_RELOCK0, "state_ is woken");
        if (s.expired) return go(out, n, b, B_DEADLINE, "deadline passed");
        return go(out, n, b, B_FUTEX, "state_ is parking");
      case B_FUTEX:
        if (!m.drained(b)) return;
        if (m.memory[STATE] != 0) return go(out, n, b, B_CHECK, "FUTEX_WAIT: word changed");
        return go(out, n, b, SLEEP_TIMED, "FUTEX_WAIT (timed): sleeps");
      case SLEEP_TIMED:
        n.expired = 1;
        return go(out, n, b, B_CHECK, "FUTEX_WAIT times out");
      case B_DEADLINE:
        if (deadline_skips_claim) {
          n.timed_out = 1;
          return go(out, n, b, B_RELOCK0, "times out without claiming");
        }
        if (!m.drained(b)) return;
        if (m.memory[CLAIM] != 0)
          return go(out, n, b, B_WAKEWAIT, "try_claim fails: a waker owns it");
        n.mem.memory[CLAIM] = 1;
        ++n.claims;
        n.timed_out = 1;
        return go(out, n, b, B_RELOCK0, "try_claim succeeds: timed out");
      case B_WAKEWAIT:
        if (m.load(b, STATE) != 0) return go(out, n, b, B_RELOCK0, "state_ is woken");
        return go(out, n, b, B_FUTEX2, "state_ is parking");
      case B_FUTEX2:
        if (!m.drained(b)) return;
        if (m.memory[STATE] != 0) return go(out, n, b, B_WAKEWAIT, "FUTEX_WAIT: word changed");
        return go(out, n, b, SLEEP, "FUTEX_WAIT: sleeps");
      case SLEEP:
        return;
      case B_RELOCK0:
      case B_RELOCK1: {
        const int i = s.pc[b] - B_RELOCK0;
        if (!lock(n, b, LOCK0 + i)) return;
        return go(out, n, b, i == 0 ? B_RELOCK1 : B_SCAN, "re-locks a channel");
      }
      case B_SCAN: {
        n.linked[0] = n.linked[1] = 0;
        const int done = m.load(b, STATUS0) + m.load(b, STATUS1);
        if (s.timed_out ? done != 0 : done != 1) n.verdict = s.timed_out ? 2 : 1;
        return go(out, n, b, B_FINAL0, "unlinks its entries, reads the statuses");
      }
      case B_FINAL0:
      case B_FINAL1: {
        const int i = s.pc[b] - B_FINAL0;
        if (!n.mem.store(b, LOCK0 + i, 0)) return;
        return go(out, n, b, i == 0 ? B_FINAL1 : B_DONE, "unlocks a channel");
      }
      case B_DONE:
        return;
    }
  }
};

}  // namespace

TEST_CASE("waiter claim: exactly one party completes a select, under x86-TSO") {
  model::check_holds(claim_model{}, claim_model::initial(), "waiter claim");
}

TEST_CASE("waiter claim: a claim by load and store lets two parties in (the checker has teeth)") {
  claim_model mutated;
  mutated.claim_is_load_then_store = true;
  model::require_caught(mutated, claim_model::initial());
}

TEST_CASE("waiter claim: a deadline that does not claim loses a value (the checker has teeth)") {
  claim_model mutated;
  mutated.deadline_skips_claim = true;
  model::require_caught(mutated, claim_model::initial());
}
