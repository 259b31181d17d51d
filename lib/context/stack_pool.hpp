// lib/context/stack_pool.hpp: where fiber stacks come from.
//
// A million parked fibers must fit on a stock Linux box, whose kernel allows
// a process 65,530 memory mappings (vm.max_map_count). One mmap per stack, or
// one guard page per stack (mprotect splits a mapping in three), would run out
// long before that. So:
//
//   1. Stacks are carved out of slabs: one anonymous MAP_NORESERVE mapping of
//      about 64 MiB holds many stacks. The kernel commits a page only when a
//      fiber first touches it, so an idle fiber costs the pages its frames
//      reached (usually one) however large its stack is.
//   2. Each stack is [guard page][usable bytes]. The first
//      options::guarded_stacks stacks carved get a real guard: a guard region
//      (madvise MADV_GUARD_INSTALL, Linux 6.13+), which marks the page as
//      faulting in the page table without splitting the mapping, or where the
//      kernel lacks those, mprotect PROT_NONE (two mappings each). The rest
//      leave it readable. A guard region is installed when the stack's first
//      frame is built (install_pending_guard), by the worker that first runs
//      it. The policy is in docs/design.md ("Stacks").
//   3. Each stack comes with a record slot of stack_record_bytes, in a dense
//      array at the end of its slab (above every stack's top, where no
//      overflow reaches), where the scheduler keeps the fiber's control
//      block. Spawning a fiber writes only its record; the stack's first
//      page is touched (and faulted in, zeroed by the kernel) by the worker
//      that first runs it. So a thread that spawns a million fibers spends
//      no time in page faults for their stacks (the workers take them, in
//      parallel), and the records of 32 fibers share one page.
//   4. Freed stacks go on free lists and are reused as they are, without a
//      system call: a per-thread cache for the default size (refilled and
//      spilled in batches under a lock), a locked list per other size.
//      Pages a fiber touched stay committed while the stack is cached.
#pragma once

#include <cstddef>

namespace spindle::detail {

// stack_record_bytes: the size of the record slot that comes with a stack
// (aligned to it, so two fibers' records never share a cache line pair).
inline constexpr std::size_t stack_record_bytes = 128;

// fiber_stack: one stack's usable memory, [bottom, bottom + size), and its
// record slot (stack_record_bytes, never touched by the pool).
struct fiber_stack {
  char* bottom = nullptr;
  std::size_t size = 0;
  void* record = nullptr;
  bool guarded = false;
  bool fresh = false;          // never used yet: its pages are not resident
  bool guard_pending = false;  // gets a guard region before its first frame is built
  char* top() const noexcept { return bottom + size; }
};

// stack_pool_limits: fixed at runtime start from options.
struct stack_pool_limits {
  std::size_t default_size;
  std::size_t guarded_stacks;
  bool guard_regions;  // guard with MADV_GUARD_INSTALL (kernel_has_guard_regions() was true)
};

// kernel_has_guard_regions: whether madvise(MADV_GUARD_INSTALL) works here
// (asked once, on a scratch page).
bool kernel_has_guard_regions() noexcept;

// configure_stack_pool: sets the default size and guard budget; call once, before any allocation.
void configure_stack_pool(const stack_pool_limits& limits) noexcept;

// allocate_stack: a stack of at least `size` usable bytes (0 = the default).
// Throws resource_error when the kernel refuses the memory.
fiber_stack allocate_stack(std::size_t size);

// install_pending_guard: installs a guard_pending stack's guard region (the
// worker that first runs a fiber calls it, so that the page-table work for a
// million guards is spread over the workers like the stacks' first page
// faults); the stack is guarded from then on, or unguarded if the kernel
// refused.
void install_pending_guard(fiber_stack& stack) noexcept;

// release_stack: returns a stack no fiber runs on any more. Does not block
// for long (a spinlock on the batch path) and makes no system call.
void release_stack(fiber_stack stack) noexcept;

// stack_pool_counters: for runtime_stats().
struct stack_pool_counters {
  std::size_t reserved, guarded, slabs;
};
stack_pool_counters stack_pool_counts() noexcept;

}  // namespace spindle::detail
