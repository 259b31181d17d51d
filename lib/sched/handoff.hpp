// lib/sched/handoff.hpp: who owns a processor, and how ownership changes.
//
// processor::owner_word = (generation << 32) | (worker id << 1) | busy.
//
//   - A worker owns a processor while the word names it. It sets `busy`
//     (enter_runtime, one CAS from the exact word it expects) before it
//     touches the processor's queues, and clears it (leave_runtime, a release
//     store) when it switches into a fiber: user code runs with busy clear.
//   - The monitor takes a processor away from a stuck worker in a single CAS
//     from the word it observed (busy clear) to a word naming another worker,
//     with the generation bumped and busy set (the new owner starts inside
//     the runtime). So a processor is never owned by two workers: if the
//     old owner's enter_runtime CAS comes first, the monitor's CAS fails;
//     if the monitor's comes first, the old owner's fails, and the old owner
//     knows it lost the processor without ever touching it again.
//   - A worker that lost its processor finishes what its fiber asked for
//     (after_switch) without one: fibers it readies go to the global queue.
//     Then it joins the spare workers, or retires.
// Memory ordering: leave_runtime's release and the monitor's acq_rel CAS
// publish everything the old owner did to the processor to the new owner.
#pragma once

#include <atomic>
#include <cstdint>

#include "sched/core.hpp"

namespace spindle::detail {

inline constexpr std::uint64_t owner_busy = 1;

inline std::uint64_t owner_word_for(std::uint32_t generation, std::uint32_t worker_id) noexcept {
  return (static_cast<std::uint64_t>(generation) << 32) |
         (static_cast<std::uint64_t>(worker_id) << 1);
}

inline std::uint32_t generation_of(std::uint64_t word) noexcept {
  return static_cast<std::uint32_t>(word >> 32);
}

// enter_runtime: the owner marks itself busy on w.proc. False when the
// processor was handed to another worker meanwhile.
inline bool enter_runtime(worker& w) noexcept {
  std::uint64_t expected = w.owned_word;
  return w.proc->owner_word.compare_exchange_strong(
      expected, expected | owner_busy, std::memory_order_acquire, std::memory_order_acquire);
}

// leave_runtime: the owner is about to run user code on w.proc.
inline void leave_runtime(worker& w) noexcept {
  w.proc->owner_word.store(w.owned_word, std::memory_order_release);
}

}  // namespace spindle::detail
