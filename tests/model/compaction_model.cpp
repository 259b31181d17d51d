// tests/model/compaction_model.cpp: compaction (only processors [0, active)
// run fibers) against the sleep/wake protocol, model-checked.
//
// The protocol is the one at the top of lib/sched/scheduler.cpp (S1-S3 of a
// submitter, W1-W5 of a worker running out of work, wakep), plus step 3 of
// lib/sched/monitor.cpp: the monitor deactivates the last active processor
// and activates it again; a worker whose processor is inactive hands on the
// global queue, evacuates its own queues to it and rests in its loop,
// forwarding what the loop readies. Two processors, each with its worker:
// P0 is always active, P1 is the one the monitor (de)activates, at any
// point, or it stops. One plain thread pushes a fiber to the global queue;
// P1's loop holds one fiber it makes runnable at some poll (I/O, a timer):
// run by P1 if active, else forwarded to the global queue. Two
// configurations (both at once would be 2.3 million states): `full`, the
// monitor switches P1 off, on and off again; `spawning`, it switches P1 off
// once, and one fiber a worker runs readies another (put_local: into the
// processor's runnext, or an offload to the global queue), so P1 may be
// switched off with a fiber queued and evacuate it.
//
// Checked in every state (invariant):
//   - nidle equals the number of processors in the idle set, and no
//     processor is in it twice;
//   - an inactive processor is never in the idle set (no waker claims it);
//   - no fiber runs twice (runs never exceed fibers);
//   - a processor takes a fiber while inactive only when it was deactivated
//     after its worker last read active_ (it was busy: it rests at its next
//     scheduling point); never once its worker saw it inactive (unless it
//     was activated since).
// Checked in every state without successors (every thread done or asleep):
//   - every fiber ran: none is left in the global queue, in a processor's
//     queue or in a loop while every active worker sleeps (no lost wake-up);
//   - nsearching is back to 0;
//   - an active processor's worker sleeps in W5, in the idle set; an
//     inactive one's rests in its loop (which serves its timers and I/O).
//
// Abstraction: the global queue is its length Q; a processor's runnext, ring
// and inbox are one count that only its owner touches (the balancer,
// handoffs, the safety net, spinning (W1) and the non-blocking polls are left
// out: wake_model.cpp covers W1); a fiber runs in one step. put_local's
// choice (nidle > 0 && nsearching == 0: offload) is a heuristic, so both
// outcomes are explored. A loop wake (uv_async_send: an eventfd write) is a
// sticky flag per loop that the next poll consumes; a blocking poll is a step
// enabled only while its loop has a wake or a fiber to ready, so a worker
// blocked there has no step. Steps that only touch the thread's own state
// are folded into the shared step before them, a fence into the load after
// it, and a store that the thread follows with a fence, a lock or a system
// call is made at its flush (the thread does nothing in between: the same
// executions). The store buffers are still there for REST_EXIT's store;
// wake_model.cpp checks the fences under TSO.
//
// Three bugs this model found in the first version of compaction (commit
// 1563716), fixed since and kept as mutations that must fail:
//   activate_sets_wake_word  activate_next woke P1 with wake_processor
//       (wake_word := inbox) after releasing the idle lock: P1, active again,
//       can join the idle set first, then leave W5 on the monitor's word while
//       still in the set and join it twice; or a waker that claimed it has
//       its wake_search overwritten, and nsearching stays 1 for good.
//       Fix: activate_next wakes the loop only (loop->wake()).
//   rest_skips_handoff  a worker that saw a fiber in the global queue at W4
//       left the idle set to take it; deactivated meanwhile, it rested, and
//       the fiber waited while P0 slept (only a searcher handed on). Fix:
//       rest_while_inactive calls wakep when the global queue is not empty.
//   !wakep_rechecks  wakep that found no idle processor after its CAS undid
//       nsearching and returned; a submitter that saw nsearching == 1 in
//       between (a plain thread, or a resting processor forwarding) counted
//       on a searcher that never existed. Without compaction it takes two
//       plain threads pushing (wake_model.cpp). Fix: after the undo, wakep
//       fences and starts over if the global queue is not empty.
//
// Model step                 real code
//   P_NEXT                   a plain thread: spawn -> push_global
//   S1, S2                   scheduler.cpp push_global(_all) (the length
//                            stored under the queue lock), after_global_push
//                            (fence, then nsearching == 0 -> wakep)
//   WP0..WP4, WP_UNDO,       wakep: nidle load, CAS nsearching 0->1,
//   WP_RECHECK               claim_idle, wake_processor (wake_word, then
//                            loop->wake); the undo when nobody was idle, then
//                            the fence and the global queue's length again
//   F_TOP                    find_runnable: is_active(p); local_work
//   F_SIZE, F_POP            take_global: size, pop under the queue lock
//   STOP1, STOP2, RUN        stop_searching (nsearching -= 1, then the global
//                            queue -> wakep), then execute
//   run()                    execute; the fiber readies another (put_local)
//   WW                       wait_for_work: CAS nsearching 0->1
//   W2                       join_idle_set (idle lock; refuses when inactive:
//                            then stop_searching)
//   W3, W4, W4_LEAVE         nsearching -= 1; the fence and has_visible_work;
//                            leave_idle_set
//   W5, W5_POLL, W5_READIED  sleep_in_loop: the wake word, poll(true), the
//                            readied fiber (leave_idle_set, else the ring)
//   REST                     rest_while_inactive: stop_searching, or wakep
//                            when the global queue is not empty
//   REST_EVAC                evacuate (push_global_all of the queues)
//   REST_CHECK, REST_POLL    while (!is_active(p)) { poll(true); forward
//                            (push_global_all) }
//   REST_EXIT                wake_word := none
//   M_NEXT                   monitor.cpp deactivate_last (idle lock: active_,
//                            remove_from_idle_set_locked) or activate_next
//                            (idle lock: active_)
//   M_WAKE_WORD, M_LOOP_WAKE deactivate_last: wake_processor (wake_word,
//                            loop->wake); activate_next: loop->wake
#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "checks.hpp"

namespace {

using model::u8;

enum var : int { Q, NSEARCHING, NIDLE, WAKE0, WAKE1, nvars };
enum : u8 { wake_none = 0, wake_search = 1, wake_inbox = 2 };
constexpr int nprocs = 2, pusher = 2, monitor = 3, nthreads = 4;
constexpr int last = 1;  // the processor the monitor (de)activates

enum pc : u8 {
  F_TOP,
  F_LOCAL,  // local_work without the is_active check (rest_checks_once only)
  F_SIZE,
  F_POP,
  STOP1,
  STOP2,
  RUN,
  WW,
  W2,
  W3,
  W4,
  W4_LEAVE,
  W5,
  W5_POLL,
  W5_READIED,
  REST,
  REST_EVAC,
  REST_CHECK,
  REST_POLL,
  REST_EXIT,
  S1,
  S2,
  WP0,
  WP1,
  WP2,
  WP_UNDO,
  WP_RECHECK,
  WP3,
  WP4,
  P_NEXT,
  P_DONE,
  M_NEXT,
  M_ACT,
  M_WAKE_WORD,
  M_LOOP_WAKE,
  M_DONE,
};

struct state {
  model::tso<nthreads, nvars> mem;
  u8 pc[nthreads];
  u8 ret[nthreads];         // where a push_global, wakep, stop_searching or wake returns to
  u8 claimed[nthreads];     // the processor wakep claimed
  u8 npush[nthreads];       // fibers the push_global(_all) at S1 pushes
  u8 searching[nprocs];     // worker::searching
  u8 in_idle[nprocs];       // entries in the idle set (idle lock); 2 is a bug
  u8 local[nprocs];         // runnext + ring + inbox
  u8 io[nprocs];            // fibers the loop will ready at some poll
  u8 loop_wake[nprocs];     // a loop wake no poll consumed yet
  u8 saw_inactive[nprocs];  // its worker read active_: inactive; not activated since
  u8 active;                // active_: written in the monitor's idle-lock steps
  u8 ops;                   // activity changes the monitor may still make
  u8 to_push;               // fibers the plain thread has yet to push
  u8 spawns;                // fibers running fibers may still ready
  u8 fibers;                // fibers in existence
  u8 ran;                   // fibers run
  u8 bad_run;               // a fiber taken by a processor its worker saw inactive
};

// config: what the threads may do (see the top of the file).
struct config {
  u8 ops;      // the monitor's changes: off, on, off, ...
  u8 to_push;  // fibers the plain thread pushes
  u8 spawns;   // fibers running fibers may ready
  u8 io;       // fibers P1's loop readies
};
constexpr config full{3, 1, 0, 1};      // P1 off, on and off again
constexpr config spawning{1, 1, 1, 1};  // P1 off once, and put_local (P1 busy when it goes off)

// compaction_model: the protocol, with switches that break it (the mutated
// models the explorer must catch).
struct compaction_model {
  using state = ::state;
  bool join_ignores_active = false;      // join_idle_set without the is_active check
  bool deactivate_keeps_idle = false;    // deactivate_last leaves P1 in the idle set
  bool deactivate_skips_wake = false;    // ... takes it out but does not wake it
  bool activate_wakes_first = false;     // activate_next: loop wake, then active_
  bool activate_sets_wake_word = false;  // activate_next: wake_processor (bug 1)
  bool rest_checks_once = false;         // rest: active_ read only before polling
  bool rest_skips_evacuate = false;      // rest_while_inactive without evacuate
  bool rest_skips_handoff = false;       // ... without wakep for the global queue (bug 2)
  bool wakep_rechecks = true;            // wakep: after an undo, fence and look again (bug 3)

  static state initial(const config& c) {
    state s{};
    s.pc[0] = s.pc[1] = F_TOP;
    s.pc[pusher] = c.to_push > 0 ? P_NEXT : P_DONE;
    s.pc[monitor] = c.ops > 0 ? M_NEXT : M_DONE;
    s.active = nprocs;
    s.ops = c.ops;
    s.to_push = c.to_push;
    s.spawns = c.spawns;
    s.io[last] = c.io;
    s.fibers = s.to_push + s.io[last];
    return s;
  }

  void successors(const state& s, std::vector<std::pair<state, std::string>>& out) const {
    for (int t = 0; t < nthreads; ++t) {
      model::add_flush(s, t, name(t), out);
      if (t == monitor) {
        monitor_step(s, out);
      } else if (t == pusher) {
        if (!push_step(s, t, out)) pusher_step(s, out);
      } else if (!push_step(s, t, out) && !worker_step(s, t, out) && !wait_step(s, t, out)) {
        rest_step(s, t, out);
      }
    }
  }

  const char* invariant(const state& s) const {
    if (s.mem.memory[NIDLE] != s.in_idle[0] + s.in_idle[1])
      return "nidle differs from the idle set";
    for (int p = 0; p < nprocs; ++p) {
      if (s.in_idle[p] > 1) return "a processor is in the idle set twice";
      if (s.in_idle[p] != 0 && !active(s, p)) return "an inactive processor is in the idle set";
    }
    if (s.bad_run) return "a processor takes a fiber after its worker saw it inactive";
    if (s.ran > s.fibers) return "a fiber ran twice";
    if (s.mem.memory[NSEARCHING] > nprocs) return "nsearching out of range";
    return nullptr;
  }

  const char* terminal(const state& s) const {
    if (s.mem.memory[Q] != 0)
      return "lost wake-up: a fiber is in the global queue and every active worker sleeps";
    if (s.local[0] + s.local[1] != 0) return "lost fiber: left in a processor's queue";
    if (s.ran != s.fibers) return "lost fiber";
    if (s.mem.memory[NSEARCHING] != 0) return "nsearching leaked: no submitter wakes anyone";
    for (int p = 0; p < nprocs; ++p) {
      if (active(s, p) && s.pc[p] == REST_POLL) return "an active processor rests for good";
      if (active(s, p) && (s.pc[p] != W5_POLL || !s.in_idle[p]))
        return "an active processor sleeps outside the idle set";
      if (!active(s, p) && s.pc[p] != REST_POLL)
        return "an inactive processor sleeps outside its rest loop";
    }
    return nullptr;
  }

 private:
  using successors_t = std::vector<std::pair<state, std::string>>;

  static std::string name(int t) {
    return t == pusher ? "pusher" : t == monitor ? "monitor" : "P" + std::to_string(t);
  }
  static bool active(const state& s, int p) { return p < s.active; }

  static void go(successors_t& out, state n, int t, pc to, const std::string& what) {
    n.pc[t] = to;
    out.emplace_back(n, name(t) + " " + what);
  }
  // calling: thread t enters a routine that returns to `back`.
  static state calling(state n, int t, pc back) {
    n.ret[t] = back;
    return n;
  }
  // push: push_global_all of `count` fibers by thread t, returning to `back`.
  static state push(state n, int t, u8 count, pc back) {
    n.npush[t] = count;
    return calling(n, t, back);
  }
  // back: returns from the routine (registers cleared: one state, not many).
  static void back(successors_t& out, state n, int t, const std::string& what) {
    const pc to = pc(n.ret[t]);
    n.ret[t] = n.claimed[t] = 0;
    go(out, n, t, to, what);
  }

  // ---- the plain thread: spawns a fiber from outside the runtime.
  static void pusher_step(const state& s, successors_t& out) {
    if (s.pc[pusher] == P_DONE) return;
    state n = s;
    --n.to_push;
    go(out, push(n, pusher, 1, n.to_push > 0 ? P_NEXT : P_DONE), pusher, S1, "spawn");
  }

  // ---- push_global(_all) (S1-S3) and wakep, for the plain thread and the
  // workers. False when t is in neither.
  bool push_step(const state& s, int t, successors_t& out) const {
    const auto& m = s.mem;
    state n = s;
    switch (s.pc[t]) {
      case S1:  // under the queue lock; the store is made at its flush (see the top)
        if (!m.drained(t)) return true;
        n.mem.memory[Q] = static_cast<u8>(m.memory[Q] + s.npush[t]);
        n.npush[t] = 0;
        go(out, n, t, S2, "S1 push " + std::to_string(s.npush[t]));
        return true;
      case S2:
        if (!m.drained(t)) return true;  // the fence
        if (m.memory[NSEARCHING] != 0) {
          back(out, n, t, "S2 fence, S3 nsearching!=0");
        } else {
          go(out, n, t, WP0, "S2 fence, S3 nsearching==0: wakep");
        }
        return true;
      default:
        return wakep_step(s, t, out);
    }
  }

  bool wakep_step(const state& s, int t, successors_t& out) const {
    const auto& m = s.mem;
    state n = s;
    switch (s.pc[t]) {
      case WP0:
        if (m.load(t, NIDLE) == 0) {
          back(out, n, t, "wakep: nidle==0");
        } else {
          go(out, n, t, WP1, "wakep: nidle>0");
        }
        return true;
      case WP1:
        if (!m.drained(t)) return true;
        if (m.memory[NSEARCHING] != 0) {
          back(out, n, t, "wakep: CAS fails");
          return true;
        }
        n.mem.memory[NSEARCHING] = 1;
        go(out, n, t, WP2, "wakep: CAS nsearching 0->1");
        return true;
      case WP2: {
        if (!m.drained(t)) return true;                          // the idle lock
        const int p = s.in_idle[0] ? 0 : s.in_idle[1] ? 1 : -1;  // the lowest index
        if (p < 0) {
          go(out, n, t, WP_UNDO, "claim_idle: none");
          return true;
        }
        --n.in_idle[p];
        --n.mem.memory[NIDLE];
        n.claimed[t] = static_cast<u8>(p);
        go(out, n, t, WP3, "claim_idle: P" + std::to_string(p));
        return true;
      }
      case WP_UNDO:
        if (!m.drained(t)) return true;
        --n.mem.memory[NSEARCHING];
        if (wakep_rechecks) {
          go(out, n, t, WP_RECHECK, "wakep: nsearching -= 1");
        } else {
          back(out, n, t, "wakep: nsearching -= 1");
        }
        return true;
      case WP_RECHECK:
        if (!m.drained(t)) return true;  // the fence
        if (m.memory[Q] == 0) {
          back(out, n, t, "wakep: fence, global queue empty");
        } else {
          go(out, n, t, WP0, "wakep: fence, global queue not empty: again");
        }
        return true;
      case WP3:
        n.mem.memory[WAKE0 + s.claimed[t]] = wake_search;  // made at its flush
        go(out, n, t, WP4, "wake_word := search");
        return true;
      case WP4:
        if (!m.drained(t)) return true;  // uv_async_send: a system call
        n.loop_wake[s.claimed[t]] = 1;
        back(out, n, t, "wakes the loop of P" + std::to_string(s.claimed[t]));
        return true;
      default:
        return false;
    }
  }

  // ---- a worker: find_runnable, stop_searching, execute. False when t is
  // in none of them.
  bool worker_step(const state& s, int t, successors_t& out) const {
    const auto& m = s.mem;
    state n = s;
    switch (s.pc[t]) {
      case F_TOP:
        if (!active(s, t)) {
          n.saw_inactive[t] = 1;
          go(out, n, t, REST, "find_runnable: inactive");
          return true;
        }
        local_work(n, t, out, "find_runnable: active, ");
        return true;
      case F_LOCAL:
        local_work(n, t, out, "");
        return true;
      case F_SIZE:
        if (m.load(t, Q) == 0) {
          wait_for_work(n, t, out, "take_global: empty");
        } else {
          go(out, n, t, F_POP, "take_global: size>0");
        }
        return true;
      case F_POP:  // the queue lock
        if (!m.drained(t)) return true;
        if (m.memory[Q] == 0) {
          wait_for_work(n, t, out, "take_global: raced, empty");
          return true;
        }
        --n.mem.memory[Q];
        found(n, t, out, "take_global: a fiber");
        return true;
      case STOP1:
        if (!m.drained(t)) return true;
        n.searching[t] = 0;
        --n.mem.memory[NSEARCHING];
        go(out, n, t, STOP2, "stop_searching: nsearching -= 1");
        return true;
      case STOP2:
        if (m.load(t, Q) == 0) {
          back(out, n, t, "stop_searching: global queue empty");
        } else {
          go(out, n, t, WP0, "stop_searching: global queue not empty, wakep");
        }
        return true;
      case RUN:
        run(n, t, out, "run it");
        return true;
      default:
        return false;
    }
  }

  void local_work(state& n, int t, successors_t& out, const std::string& what) const {
    if (n.local[t] == 0) return go(out, n, t, F_SIZE, what + "local_work: none");
    --n.local[t];
    found(n, t, out, what + "local_work: a fiber");
  }

  // found: find_runnable has a fiber: stop searching, then run it.
  void found(state& n, int t, successors_t& out, const std::string& what) const {
    if (n.saw_inactive[t]) n.bad_run = 1;
    if (n.searching[t]) return go(out, calling(n, t, RUN), t, STOP1, what);
    run(n, t, out, what);
  }

  // run: execute: the fiber runs; it may ready one more, which put_local
  // queues on this processor or offloads to the global queue.
  static void run(state& n, int t, successors_t& out, const std::string& what) {
    ++n.ran;
    go(out, n, t, F_TOP, what + ", runs it");
    if (n.spawns == 0) return;
    --n.spawns;
    ++n.fibers;
    go(out, push(n, t, 1, F_TOP), t, S1, what + ", runs it; it readies one: offload");
    ++n.local[t];
    go(out, n, t, F_TOP, what + ", runs it; it readies one: into runnext");
  }

  // wait_for_work: W1 (without the spin) and on to W2.
  static void wait_for_work(state& n, int t, successors_t& out, const std::string& what) {
    go(out, n, t, n.searching[t] ? W2 : WW, what);
  }

  // wait_step: wait_for_work and sleep_in_loop (W2-W5). False when t is in
  // neither.
  bool wait_step(const state& s, int t, successors_t& out) const {
    const auto& m = s.mem;
    state n = s;
    switch (s.pc[t]) {
      case WW:
        if (!m.drained(t)) return true;
        n.searching[t] = m.memory[NSEARCHING] == 0;
        if (n.searching[t]) n.mem.memory[NSEARCHING] = 1;
        go(out, n, t, W2, n.searching[t] ? "CAS nsearching 0->1" : "CAS nsearching fails");
        return true;
      case W2:
        if (!m.drained(t)) return true;  // the idle lock
        if (!active(s, t) && !join_ignores_active) {
          if (s.searching[t]) {
            go(out, calling(n, t, F_TOP), t, STOP1, "W2 join_idle_set refused: inactive");
          } else {
            go(out, n, t, F_TOP, "W2 join_idle_set refused: inactive");
          }
          return true;
        }
        n.mem.memory[WAKE0 + t] = wake_none;
        ++n.in_idle[t];
        ++n.mem.memory[NIDLE];
        go(out, n, t, s.searching[t] ? W3 : W4, "W2 join the idle set");
        return true;
      case W3:
        if (!m.drained(t)) return true;
        n.searching[t] = 0;
        --n.mem.memory[NSEARCHING];
        go(out, n, t, W4, "W3 nsearching -= 1");
        return true;
      case W4:
        if (!m.drained(t)) return true;  // the fence
        if (m.memory[Q] != 0 || s.local[t] != 0) {
          go(out, n, t, W4_LEAVE, "W4 fence, re-check: work");
        } else {
          go(out, n, t, W5, "W4 fence, re-check: nothing");
        }
        return true;
      case W4_LEAVE:
        if (!m.drained(t)) return true;  // the idle lock
        if (!s.in_idle[t]) {
          go(out, n, t, W5, "leave_idle_set: not in it");
          return true;
        }
        --n.in_idle[t];
        --n.mem.memory[NIDLE];
        go(out, n, t, F_TOP, "leave_idle_set");
        return true;
      default:
        return sleep_step(s, t, out);
    }
  }

  // sleep_step: sleep_in_loop (W5).
  static bool sleep_step(const state& s, int t, successors_t& out) {
    state n = s;
    switch (s.pc[t]) {
      case W5: {
        const u8 why = s.mem.load(t, WAKE0 + t);
        if (why == wake_none) {
          go(out, n, t, W5_POLL, "W5 wake_word==none: poll(true)");
          return true;
        }
        n.searching[t] = why == wake_search;
        go(out, n, t, F_TOP, why == wake_search ? "W5 woken to search" : "W5 woken (inbox)");
        return true;
      }
      case W5_POLL:
        blocking_poll(s, t, W5, W5_READIED, out);
        return true;
      case W5_READIED:
        if (!s.mem.drained(t)) return true;  // leave_idle_set: the idle lock
        if (s.in_idle[t]) {
          --n.in_idle[t];
          --n.mem.memory[NIDLE];
          n.searching[t] = 0;
          run(n, t, out, "W5 readied: leave_idle_set");
        } else {
          ++n.local[t];
          go(out, n, t, W5, "W5 readied, not in the idle set: into the ring");
        }
        return true;
      default:
        return false;
    }
  }

  // blocking_poll: poll(true) returns when the loop was woken (to `woken`)
  // or readies its fiber (to `readied`, the wake consumed too if there was
  // one). No step while neither: the worker sleeps.
  static void blocking_poll(const state& s, int t, pc woken, pc readied, successors_t& out) {
    if (!s.mem.drained(t)) return;  // epoll_wait: a system call
    state n = s;
    if (s.loop_wake[t]) {
      n.loop_wake[t] = 0;
      go(out, n, t, woken, "poll(true) returns: loop woken");
    }
    if (s.io[t]) {
      --n.io[t];
      go(out, n, t, readied, "poll(true) readies a fiber");
    }
  }

  // ---- an inactive processor's worker: rest_while_inactive.
  void rest_step(const state& s, int t, successors_t& out) const {
    state n = s;
    switch (s.pc[t]) {
      case REST:
        if (s.searching[t])
          return go(out, calling(n, t, REST_EVAC), t, STOP1, "rest: stop_searching");
        if (rest_skips_handoff) return evacuate(n, t, out, "rest");
        if (s.mem.load(t, Q) == 0) return evacuate(n, t, out, "rest: global queue empty");
        return go(out, calling(n, t, REST_EVAC), t, WP0, "rest: global queue not empty, wakep");
      case REST_EVAC:
        return evacuate(n, t, out, "rest");
      case REST_CHECK:
        if (active(s, t)) return go(out, n, t, REST_EXIT, "rest: active again");
        return go(out, n, t, REST_POLL, "rest: inactive, poll(true)");
      case REST_POLL: {
        // The readied fiber is forwarded (push_global_all) before the loop
        // reads active_ again.
        const pc woken = rest_checks_once ? REST_EXIT : REST_CHECK;
        const pc forwarded = rest_checks_once ? REST_POLL : REST_CHECK;
        const std::size_t first = out.size();
        blocking_poll(s, t, woken, S1, out);
        for (std::size_t i = first; i < out.size(); ++i) {
          if (out[i].first.pc[t] == S1) out[i].first = push(out[i].first, t, 1, forwarded);
        }
        return;
      }
      case REST_EXIT:
        if (!n.mem.store(t, WAKE0 + t, wake_none)) return;
        return go(out, n, t, rest_checks_once ? F_LOCAL : F_TOP, "rest over: wake_word := none");
    }
  }

  // evacuate: moves the processor's queues to the global queue, then rests.
  void evacuate(state& n, int t, successors_t& out, const std::string& what) const {
    if (n.local[t] == 0 || rest_skips_evacuate)
      return go(out, n, t, REST_CHECK, what + ", nothing to evacuate");
    const u8 count = n.local[t];
    n.local[t] = 0;
    go(out, push(n, t, count, REST_CHECK), t, S1, what + ", evacuate: push_global_all");
  }

  // ---- the monitor: deactivate_last and activate_next on P1, in any order
  // the state allows, up to `ops` times. Its buffer is empty at M_NEXT (every
  // path there ends with a system call).
  void monitor_step(const state& s, successors_t& out) const {
    state n = s;
    switch (s.pc[monitor]) {
      case M_NEXT:
        n.ops = 0;
        go(out, n, monitor, M_DONE, "stops");
        n.ops = s.ops - 1;
        if (s.active == nprocs) return deactivate_last(n, out);
        if (activate_wakes_first)
          return go(out, calling(n, monitor, M_ACT), monitor, M_LOOP_WAKE,
                    "activate_next: wakes P1's loop first");
        return activate_next(n, out);
      case M_ACT:
        if (!s.mem.drained(monitor)) return;  // the idle lock
        n.active = nprocs;
        n.saw_inactive[last] = 0;
        return go(out, n, monitor, after_op(n), "activate_next: active_ := 2");
      case M_WAKE_WORD:
        n.mem.memory[WAKE0 + last] = wake_inbox;  // made at its flush
        return go(out, n, monitor, M_LOOP_WAKE, "wake_word := inbox");
      case M_LOOP_WAKE:
        if (!s.mem.drained(monitor)) return;  // uv_async_send: a system call
        n.loop_wake[last] = 1;
        n.ret[monitor] = 0;
        return go(out, n, monitor, s.ret[monitor] == M_ACT ? M_ACT : after_op(n),
                  "wakes the loop of P1");
      default:
        return;
    }
  }

  static pc after_op(const state& n) { return n.ops == 0 ? M_DONE : M_NEXT; }

  void deactivate_last(state& n, successors_t& out) const {
    n.active = last;
    const bool was_idle = n.in_idle[last] != 0;
    if (was_idle && !deactivate_keeps_idle) {
      --n.in_idle[last];
      --n.mem.memory[NIDLE];
    }
    if (!was_idle || deactivate_skips_wake)
      return go(out, n, monitor, after_op(n), "deactivate_last: active_ := 1, P1 not idle");
    go(out, n, monitor, M_WAKE_WORD, "deactivate_last: active_ := 1, P1 leaves the idle set");
  }

  void activate_next(state& n, successors_t& out) const {
    n.active = nprocs;
    n.saw_inactive[last] = 0;
    go(out, n, monitor, activate_sets_wake_word ? M_WAKE_WORD : M_LOOP_WAKE,
       "activate_next: active_ := 2");
  }
};

}  // namespace

TEST_CASE("compaction: no lost wake-up, a consistent idle set, in any interleaving") {
  model::check_holds(compaction_model{}, compaction_model::initial(full), "compaction");
}

TEST_CASE("compaction: the same with a fiber readying another (offload or runnext)") {
  model::check_holds(compaction_model{}, compaction_model::initial(spawning),
                     "compaction, spawning");
}

TEST_CASE("compaction: join_idle_set without the is_active check is caught") {
  compaction_model mutated;
  mutated.join_ignores_active = true;
  model::require_caught(mutated, compaction_model::initial(full),
                        "inactive processor is in the idle set");
}

TEST_CASE("compaction: deactivate_last leaving P1 in the idle set is caught") {
  compaction_model mutated;
  mutated.deactivate_keeps_idle = true;
  model::require_caught(mutated, compaction_model::initial(full),
                        "inactive processor is in the idle set");
}

TEST_CASE("compaction: deactivate_last not waking the idle P1 is caught") {
  compaction_model mutated;
  mutated.deactivate_skips_wake = true;
  model::require_caught(mutated, compaction_model::initial(full), "lost");
}

TEST_CASE("compaction: activate_next waking before storing active_ is caught") {
  compaction_model mutated;
  mutated.activate_wakes_first = true;
  model::require_caught(mutated, compaction_model::initial(full),
                        "an active processor rests for good");
}

TEST_CASE("compaction: a rest loop reading active_ only before polling is caught") {
  compaction_model mutated;
  mutated.rest_checks_once = true;
  model::require_caught(mutated, compaction_model::initial(full),
                        "after its worker saw it inactive");
}

TEST_CASE("compaction: resting without evacuating the queues is caught") {
  compaction_model mutated;
  mutated.rest_skips_evacuate = true;
  model::require_caught(mutated, compaction_model::initial(full), "lost fiber");
}

// The three bugs the model found (see the top of the file).
TEST_CASE("compaction: bug 1, activate_next setting the wake word, is caught") {
  compaction_model mutated;
  mutated.activate_sets_wake_word = true;
  model::require_caught(mutated, compaction_model::initial(full), "idle set twice");
}

TEST_CASE("compaction: bug 2, resting without handing on the global queue, is caught") {
  compaction_model mutated;
  mutated.rest_skips_handoff = true;
  model::require_caught(mutated, compaction_model::initial(full), "lost wake-up");
}

TEST_CASE("compaction: bug 3, wakep undoing without a second look, is caught") {
  compaction_model mutated;
  mutated.wakep_rechecks = false;
  model::require_caught(mutated, compaction_model::initial(full), "lost wake-up");
}
