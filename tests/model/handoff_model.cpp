// tests/model/handoff_model.cpp: processor ownership (owner_word), model-checked.
//
// The protocol is in lib/sched/handoff.hpp and handoff.cpp: a worker marks
// itself busy with a CAS from the exact word it owns when it enters the
// runtime and clears busy with a release store when it runs a fiber; the
// monitor hands a processor whose owner is in user code to a spare with one
// CAS from the word it observed. Here one processor with two queued fibers
// starts owned by worker A (busy, inside the runtime); worker B is a parked
// spare; a third fiber is parked until a running fiber readies it (which
// enters the runtime from fiber context); the monitor may hand the
// processor off three times (each time to whichever worker is a spare:
// A again, with a newer generation, or B), and each worker runs at most
// three fibers.
// Every interleaving under x86-TSO must keep:
//   - at most one worker inside the runtime on the processor (two owners
//     touching its queues would corrupt them);
//   - no fiber run by two workers at once, or run while it is queued;
//   - at the end, the word names a worker that is not asleep as a spare
//     (a handoff whose wake was lost would strand the processor's fibers).
//
// Model step                 real code
//   PICK                     scheduler::find_runnable -> local_work (inside
//                            the runtime: busy set)
//   LEAVE                    execute: leave_runtime (handoff.hpp), a
//                            release store of owned_word, then run_fiber
//   USER, READY_PUT,         scheduler::ready from a fiber: enter_runtime,
//   READY_LEAVE              put_local, leave_runtime; or, when the CAS
//                            fails, lose_processor and push_global
//   ENTER                    execute: enter_runtime, the CAS owned_word ->
//                            owned_word|busy; on failure lose_processor and
//                            the fiber goes to the global queue
//   PARK, WAIT, SLEEP        become_spare: join spares_ (workers_mutex_), the
//                            park_word loop and futex_wait; on wake, load
//                            the owned_word the monitor wrote
//   M_OBSERVE                monitor.cpp retake_stuck_processors: owner_word
//                            load, acting only on busy clear
//   M_TAKE, M_PREP           hand_off: take_spare, spare->owned_word :=
//                            next generation's word (a plain store)
//   M_CAS                    hand_off: compare_exchange_strong(observed,
//                            spare's word | busy); on failure the spare
//                            goes back to spares_
//   M_WAKE, M_FUTEX          hand_off: park_word := woken (release), FUTEX_WAKE
// Abstraction: generation 0-3 and worker ids 1-2 fit the word in one byte
// (three handoffs never wrap it); fibers are bits; a fiber returning to the runtime yields
// (requeued on the processor); the global queue is not modelled beyond "gone".
#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "checks.hpp"

namespace {

using model::u8;

constexpr int worker_a = 0, worker_b = 1, monitor = 2, nthreads = 3;
enum var : int { OWNER_WORD, OWNED_A, OWNED_B, PARK_A, PARK_B, nvars };
constexpr u8 busy = 1;

constexpr u8 word_for(int generation, int worker) {
  return static_cast<u8>((generation & 3) << 3 | (worker + 1) << 1);
}
constexpr int generation_of(u8 word) { return word >> 3; }
constexpr int worker_of(u8 word) { return (word >> 1 & 3) - 1; }

enum pc : u8 {
  PICK,
  LEAVE,
  USER,
  READY_PUT,
  READY_LEAVE,
  ENTER,
  IDLE_OWNER,
  PARK,
  WAIT,
  FUTEX_WAIT,
  SLEEP,
  M_OBSERVE,
  M_TAKE,
  M_PREP,
  M_CAS,
  M_PLAIN_STORE,
  M_WAKE,
  M_FUTEX,
  M_DONE,
};

struct state {
  model::tso<nthreads, nvars> mem;
  u8 pc[nthreads];
  u8 owned[2];     // worker's owned_word (its copy)
  u8 has_proc[2];  // worker's proc != nullptr
  u8 inside[2];    // ghost: between winning the processor and leave_runtime
  u8 current[2];   // ghost: fiber bit the worker is running (0: none)
  u8 rounds[2];    // fibers a worker may still run on the processor
  u8 spare[2];     // in spares_ (guarded by workers_mutex_)
  u8 queued;       // ghost: fiber bits in the processor's run queue
  u8 running[5];   // ghost: workers running fiber 1, 2, 4 (index by bit)
  u8 parked;       // fiber 4 while it waits to be readied
  u8 global;       // ghost: fiber bits sent to the global queue
  u8 observed;     // monitor: the word it observed
  u8 chosen;       // monitor: the spare it took
  u8 handoffs;     // monitor: handoffs left
};

struct handoff_model {
  using state = ::state;
  bool monitor_ignores_busy = false;  // hand off a processor whose owner is in the runtime
  bool monitor_plain_store = false;   // compare, then store, instead of one CAS

  static state initial() {
    state s{};
    s.mem.memory[OWNER_WORD] = word_for(0, worker_a) | busy;
    s.mem.memory[OWNED_A] = s.owned[worker_a] = word_for(0, worker_a);
    s.has_proc[worker_a] = s.inside[worker_a] = 1;
    s.pc[worker_a] = PICK;
    s.pc[worker_b] = WAIT;
    s.spare[worker_b] = 1;
    s.rounds[worker_a] = s.rounds[worker_b] = 3;
    s.queued = 1 | 2;
    s.parked = 4;
    s.pc[monitor] = M_OBSERVE;
    s.handoffs = 3;
    return s;
  }

  void successors(const state& s, std::vector<std::pair<state, std::string>>& out) const {
    for (int t = 0; t < nthreads; ++t) {
      model::add_flush(s, t, name(t), out);
      if (t == monitor) {
        monitor_step(s, out);
      } else {
        worker_step(s, t, out);
      }
    }
  }

  const char* invariant(const state& s) const {
    if (s.inside[worker_a] && s.inside[worker_b])
      return "two workers inside the runtime on one processor";
    for (int f : {1, 2, 4}) {
      if (s.running[f] > 1) return "a fiber runs on two workers at once";
      if (s.running[f] != 0 && (s.queued & f) != 0) return "a fiber runs while it is queued";
    }
    return nullptr;
  }

  const char* terminal(const state& s) const {
    const int owner = worker_of(s.mem.memory[OWNER_WORD]);
    if (s.pc[owner] == SLEEP || s.pc[owner] == WAIT)
      return "the processor's owner sleeps as a spare";
    return nullptr;
  }

 private:
  using successors_t = std::vector<std::pair<state, std::string>>;

  static std::string name(int t) { return t == monitor ? "monitor" : t == worker_a ? "A" : "B"; }
  static void go(successors_t& out, state n, int t, pc to, const std::string& what) {
    n.pc[t] = to;
    out.emplace_back(n, name(t) + " " + what);
  }

  static void worker_step(const state& s, int w, successors_t& out) {
    const auto& m = s.mem;
    state n = s;
    switch (s.pc[w]) {
      case PICK: {
        const u8 f = (s.queued & 1) ? 1 : (s.queued & 2) ? 2 : 0;
        if (s.rounds[w] == 0 || f == 0) return go(out, n, w, IDLE_OWNER, "has nothing to run");
        n.queued &= static_cast<u8>(~f);
        n.current[w] = f;
        --n.rounds[w];
        return go(out, n, w, LEAVE, "picks fiber " + std::to_string(f));
      }
      case LEAVE:
        if (!n.mem.store(w, OWNER_WORD, s.owned[w])) return;
        n.inside[w] = 0;
        ++n.running[s.current[w]];
        return go(out, n, w, USER, "leave_runtime, runs fiber " + std::to_string(s.current[w]));
      case USER:
        go(out, n, w, ENTER, "fiber switches out");
        if (s.parked == 0 || !s.has_proc[w] || !m.drained(w)) return;
        if (m.memory[OWNER_WORD] == s.owned[w]) {  // scheduler::ready from a fiber
          n.mem.memory[OWNER_WORD] = s.owned[w] | busy;
          n.inside[w] = 1;
          return go(out, n, w, READY_PUT, "fiber readies fiber 4: enter_runtime succeeds");
        }
        n.has_proc[w] = 0;
        n.global |= s.parked;
        n.parked = 0;
        return go(out, n, w, USER, "fiber readies fiber 4: enter_runtime fails, to global");
      case READY_PUT:
        n.queued |= s.parked;
        n.parked = 0;
        return go(out, n, w, READY_LEAVE, "put_local fiber 4");
      case READY_LEAVE:
        if (!n.mem.store(w, OWNER_WORD, s.owned[w])) return;
        n.inside[w] = 0;
        return go(out, n, w, USER, "leave_runtime, back to the fiber");
      case ENTER: {
        if (!m.drained(w)) return;
        const u8 f = s.current[w];
        --n.running[f];
        n.current[w] = 0;
        if (s.has_proc[w] && m.memory[OWNER_WORD] == s.owned[w]) {
          n.mem.memory[OWNER_WORD] = s.owned[w] | busy;
          n.inside[w] = 1;
          n.queued |= f;  // the fiber yielded: back on the processor
          return go(out, n, w, PICK, "enter_runtime CAS succeeds");
        }
        n.has_proc[w] = 0;  // lose_processor; the fiber goes to the global queue
        n.global |= f;
        return go(out, n, w, PARK, "enter_runtime CAS fails (or lost earlier): fiber to global");
      }
      case IDLE_OWNER:
        return;
      case PARK:  // under workers_mutex_: visible to the next holder, so a direct write
        if (!m.drained(w)) return;
        n.mem.memory[PARK_A + w] = 0;
        n.spare[w] = 1;
        return go(out, n, w, WAIT, "becomes a spare");
      case WAIT: {
        if (m.load(w, PARK_A + w) == 0) return go(out, n, w, FUTEX_WAIT, "park_word 0");
        n.owned[w] = m.load(w, OWNED_A + w);
        n.has_proc[w] = n.inside[w] = 1;
        return go(out, n, w, PICK, "woken: owns the processor as " + std::to_string(n.owned[w]));
      }
      case FUTEX_WAIT:
        if (!m.drained(w)) return;
        if (m.memory[PARK_A + w] != 0) return go(out, n, w, WAIT, "FUTEX_WAIT: word changed");
        return go(out, n, w, SLEEP, "FUTEX_WAIT: sleeps");
      case SLEEP:
        return;
    }
  }

  void monitor_step(const state& s, successors_t& out) const {
    const auto& m = s.mem;
    state n = s;
    switch (s.pc[monitor]) {
      case M_OBSERVE: {
        if (s.handoffs == 0) return go(out, n, monitor, M_DONE, "done");
        const u8 word = m.load(monitor, OWNER_WORD);
        if ((word & busy) != 0 && !monitor_ignores_busy) return;  // waits for a stall
        n.observed = word;
        return go(out, n, monitor, M_TAKE, "observes word " + std::to_string(word));
      }
      case M_TAKE:
        for (int w = 0; w < 2; ++w) {
          if (!s.spare[w]) continue;
          state taken = n;
          taken.spare[w] = 0;
          taken.chosen = static_cast<u8>(w);
          go(out, taken, monitor, M_PREP, "takes spare " + name(w));
        }
        return;
      case M_PREP:
        if (!n.mem.store(monitor, OWNED_A + s.chosen,
                         word_for(generation_of(s.observed) + 1, s.chosen))) {
          return;
        }
        return go(out, n, monitor, monitor_plain_store ? M_PLAIN_STORE : M_CAS,
                  "spare's owned_word := next generation");
      case M_CAS: {
        if (!m.drained(monitor)) return;
        --n.handoffs;
        if (m.memory[OWNER_WORD] != s.observed) {
          n.spare[s.chosen] = 1;
          return go(out, n, monitor, M_OBSERVE, "CAS fails: spare goes back");
        }
        n.mem.memory[OWNER_WORD] = word_for(generation_of(s.observed) + 1, s.chosen) | busy;
        return go(out, n, monitor, M_WAKE, "CAS hands the processor to " + name(s.chosen));
      }
      case M_PLAIN_STORE:  // the mutation: a compare, then a separate store
        --n.handoffs;
        if (m.load(monitor, OWNER_WORD) != s.observed) {
          n.spare[s.chosen] = 1;
          return go(out, n, monitor, M_OBSERVE, "word changed: spare goes back");
        }
        if (!n.mem.store(monitor, OWNER_WORD,
                         word_for(generation_of(s.observed) + 1, s.chosen) | busy)) {
          return;
        }
        return go(out, n, monitor, M_WAKE, "stores the word for " + name(s.chosen));
      case M_WAKE:
        if (!n.mem.store(monitor, PARK_A + s.chosen, 1)) return;
        return go(out, n, monitor, M_FUTEX, "park_word := woken");
      case M_FUTEX:
        if (!m.drained(monitor)) return;
        if (n.pc[s.chosen] == SLEEP) n.pc[s.chosen] = WAIT;
        return go(out, n, monitor, M_OBSERVE, "FUTEX_WAKE " + name(s.chosen));
      case M_DONE:
        return;
    }
  }
};

}  // namespace

TEST_CASE("processor handoff: never two owners, no fiber run twice, under x86-TSO") {
  model::check_holds(handoff_model{}, handoff_model::initial(), "processor handoff");
}

TEST_CASE(
    "processor handoff: a monitor that ignores busy makes two owners (the checker has teeth)") {
  handoff_model mutated;
  mutated.monitor_ignores_busy = true;
  model::require_caught(mutated, handoff_model::initial(), "two workers inside");
}

TEST_CASE("processor handoff: compare-then-store instead of a CAS makes two owners (teeth)") {
  handoff_model mutated;
  mutated.monitor_plain_store = true;
  model::require_caught(mutated, handoff_model::initial());
}
