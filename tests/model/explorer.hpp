// tests/model/explorer.hpp: an explicit-state model checker for small protocols.
//
// A model is a handful of threads, each a small state machine whose steps
// are the protocol's steps, over shared memory that behaves as x86-TSO:
//   - every thread has a FIFO store buffer; a plain store (relaxed, release,
//     or a seq_cst store compiled to mov+mfence minus the fence) goes into it;
//   - a load reads the thread's own newest buffered store to that variable,
//     else memory;
//   - a buffered store reaches memory in a separate step that may happen at
//     any time ("flush"), in FIFO order;
//   - a fence, a locked read-modify-write (CAS, fetch_add: x86's lock
//     prefix) and a system call (futex) can run only when the thread's buffer
//     is empty, and act on memory directly.
// Sections guarded by a lock are single steps (they are atomic with respect
// to every other thread that takes the lock) that need an empty buffer.
//
// explore() enumerates every interleaving of steps and flushes breadth first,
// visiting each distinct state once, and checks the model's invariant in
// every state and its terminal condition in every state without successors
// (every thread finished or asleep). It returns the first violation with the
// shortest trace that reaches it, or the number of states when none exists.
//
// A state is a trivially copyable struct of single bytes (no padding), so
// it is hashed and compared as bytes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace model {

using u8 = std::uint8_t;

// tso: shared memory of Vars byte-sized variables, and a store buffer of up
// to Depth entries for each of Threads threads.
template <int Threads, int Vars, int Depth = 3>
struct tso {
  u8 memory[Vars];
  u8 buffered[Threads];    // entries in each thread's buffer
  u8 var[Threads][Depth];  // oldest first
  u8 value[Threads][Depth];

  u8 load(int t, int v) const {
    for (int i = buffered[t] - 1; i >= 0; --i) {
      if (var[t][i] == v) return value[t][i];
    }
    return memory[v];
  }
  // store: buffers the store; false if the buffer is full (the model must
  // then wait: the step is not enabled; flushes make room).
  bool store(int t, int v, u8 x) {
    if (buffered[t] == Depth) return false;
    var[t][buffered[t]] = static_cast<u8>(v);
    value[t][buffered[t]] = x;
    ++buffered[t];
    return true;
  }
  bool drained(int t) const { return buffered[t] == 0; }
  // pending: whether some thread other than t has a store to v in its buffer.
  bool pending(int t, int v) const {
    for (int u = 0; u < Threads; ++u) {
      if (u == t) continue;
      for (int i = 0; i < buffered[u]; ++i) {
        if (var[u][i] == v) return true;
      }
    }
    return false;
  }
  void flush(int t) {
    memory[var[t][0]] = value[t][0];
    for (int i = 1; i < buffered[t]; ++i) {
      var[t][i - 1] = var[t][i];
      value[t][i - 1] = value[t][i];
    }
    --buffered[t];
    var[t][buffered[t]] = value[t][buffered[t]] = 0;  // canonical: unused entries are zero
  }
};

// add_flush: the step x86-TSO offers every thread at any moment: its oldest
// buffered store reaches memory. State keeps its tso in `mem`.
template <class State>
void add_flush(const State& s, int t, const std::string& who,
               std::vector<std::pair<State, std::string>>& out) {
  if (s.mem.drained(t)) return;
  State n = s;
  n.mem.flush(t);
  out.emplace_back(n, who + " flush");
}

struct result {
  bool violated = false;
  std::string message;
  std::vector<std::string> trace;  // step labels from the initial state
  std::size_t states = 0;

  std::string describe() const {
    std::string s = violated ? "VIOLATION: " + message + "\n" : "no violation";
    for (std::size_t i = 0; i < trace.size(); ++i) {
      s += "  " + std::to_string(i + 1) + ". " + trace[i] + "\n";
    }
    return s;
  }
};

// explore: breadth-first search of every state reachable from `initial`.
// Model provides:
//   using state = ...;  (trivially copyable, bytes only)
//   void successors(const state&, std::vector<std::pair<state, std::string>>&) const;
//   const char* invariant(const state&) const;   // nullptr when it holds
//   const char* terminal(const state&) const;    // the same, for a state without successors
// Gives up (a test failure: the model is too big) past max_states.
template <class Model>
result explore(const Model& m, const typename Model::state& initial,
               std::size_t max_states = 5'000'000) {
  using state = typename Model::state;
  static_assert(std::is_trivially_copyable_v<state>);
  struct node {
    state s;
    std::size_t parent;
    std::string label;
  };
  std::vector<node> nodes;
  std::unordered_map<std::string, std::size_t> seen;
  auto key = [](const state& s) {
    return std::string(reinterpret_cast<const char*>(&s), sizeof(state));
  };
  auto fail = [&](std::size_t at, const char* message) {
    result r;
    r.violated = true;
    r.message = message;
    r.states = nodes.size();
    for (std::size_t i = at; i != 0; i = nodes[i].parent) r.trace.push_back(nodes[i].label);
    std::reverse(r.trace.begin(), r.trace.end());
    return r;
  };
  nodes.push_back({initial, 0, "initial"});
  seen.emplace(key(initial), 0);
  std::vector<std::pair<state, std::string>> next;
  for (std::size_t at = 0; at < nodes.size(); ++at) {
    if (const char* broken = m.invariant(nodes[at].s)) return fail(at, broken);
    next.clear();
    m.successors(nodes[at].s, next);
    if (next.empty()) {
      if (const char* broken = m.terminal(nodes[at].s)) return fail(at, broken);
    }
    for (auto& [s, label] : next) {
      if (seen.emplace(key(s), nodes.size()).second) {
        nodes.push_back({s, at, std::move(label)});
        if (nodes.size() > max_states) return fail(at, "state space larger than max_states");
      }
    }
  }
  result r;
  r.states = nodes.size();
  return r;
}

}  // namespace model
