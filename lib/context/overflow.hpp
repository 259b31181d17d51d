// lib/context/overflow.hpp: reporting fiber stack overflows.
//
// Guarded stacks: the guard page below the stack faults on overflow. Every
// worker thread runs its SIGSEGV/SIGBUS handler on an alternate signal stack
// (the faulting stack has no room left), and the handler, if the fault
// address lies in the guard page of the fiber running on that thread,
// writes "spindle: stack overflow in fiber ID (NAME), stack size N; ..." with
// async-signal-safe calls and aborts. Any other fault goes to the handler
// that was installed before spindle's (the default one: a core dump).
//
// Unguarded stacks (past options::guarded_stacks) cannot fault. Two checks
// catch an overflow as early as that allows: at every switch out of a fiber,
// its stack pointer must be above the stack's bottom; and when a fiber
// exits, the bytes just below its stack (the unused guard slot, which reads
// as zero unless something wrote there) must still be zero. Either failure
// aborts with the same message, saying the stack was unguarded.
#pragma once

#include "sched/core.hpp"

namespace spindle::detail {

// install_overflow_handler: gives the calling worker thread an alternate
// signal stack and, once per process, installs the handler.
void install_overflow_handler() noexcept;

// check_unguarded_overflow: the checks above, for a fiber switching out
// (`exiting` false) or finished (`exiting` true). Does nothing for guarded stacks.
void check_unguarded_overflow(const fiber& f, bool exiting) noexcept;

}  // namespace spindle::detail
