// lib/sched/options.hpp: the options the runtime runs with, and the
// randomized-scheduling switch used by the stress builds.
#pragma once

#include <cstdint>

#include "sched/run_queue.hpp"
#include "spindle/runtime.hpp"

namespace spindle::detail {

// freeze_options: the options the runtime starts with (configure()d or from
// the environment, with zeros resolved). Later configure() calls throw.
options freeze_options();

// available_cpus: CPUs this process may use: the affinity mask, capped by a
// cgroup CPU quota (v2 cpu.max or v1 cfs_quota_us), at least 1.
std::size_t available_cpus() noexcept;

// randomize_scheduler: true in builds configured with -Drandomize_scheduler=true,
// which skip runnext, shuffle batches and send every yielded fiber through
// the global queue (so it resumes on whichever thread takes it), to flush
// out order assumptions and thread-local caching bugs.
constexpr bool randomize_scheduler() noexcept {
#ifdef SPINDLE_RANDOMIZE_SCHEDULER
  return true;
#else
  return false;
#endif
}

// shuffle: puts a batch in random order (randomized builds only).
void shuffle(fiber_batch& batch, std::uint64_t& random_state) noexcept;

}  // namespace spindle::detail
