// lib/context/overflow.cpp: see overflow.hpp.
#include "context/overflow.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "context/switch.hpp"
#include "spindle/detail/task.hpp"

namespace spindle::detail {
namespace {

constexpr std::size_t alt_stack_size = 64 * 1024;
constexpr std::size_t canary_bytes = 64;
constexpr std::size_t overflow_reach =
    64 * 1024;  // how far below an unguarded stack a fault counts

struct sigaction previous_segv, previous_bus;

// write_text / write_number: async-signal-safe output to stderr.
void write_text(const char* s) noexcept {
  const std::size_t n = std::strlen(s);
  [[maybe_unused]] const ssize_t written = write(STDERR_FILENO, s, n);
}

void write_number(std::uint64_t v) noexcept {
  char digits[24];
  int i = sizeof digits;
  digits[--i] = '\0';
  do {
    digits[--i] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 && i > 0);
  write_text(digits + i);
}

[[noreturn]] void report_overflow(const fiber& f, bool guarded) noexcept {
  write_text("spindle: stack overflow in fiber ");
  write_number(f.id);
  write_text(" (");
  write_text(f.task != nullptr && !f.task->name().empty() ? f.task->name().c_str() : "unnamed");
  write_text("), stack size ");
  write_number(f.stack.size);
  write_text(guarded ? "" : " (unguarded stack: found after the fact)");
  write_text(
      "; raise spindle::options::stack_size (SPINDLE_STACK_SIZE) or "
      "spawn_options::stack_size for this fiber\n");
  std::abort();
}

void chain_to_previous(int sig, siginfo_t* info, void* context) noexcept {
  const struct sigaction& previous = sig == SIGSEGV ? previous_segv : previous_bus;
  if (previous.sa_flags & SA_SIGINFO) {
    previous.sa_sigaction(sig, info, context);
  } else if (previous.sa_handler != SIG_IGN && previous.sa_handler != SIG_DFL) {
    previous.sa_handler(sig);
  } else {
    signal(sig, SIG_DFL);  // return and fault again: the default action
  }
}

// on_fault: a fault just below the running fiber's stack is an overflow: in
// its guard page, or, for an unguarded stack that ran past its unused guard
// slot, in whatever lies below (unmapped memory at the start of a slab).
void on_fault(int sig, siginfo_t* info, void* context) {
  const worker* w = current_worker();
  const fiber* f = w != nullptr ? w->current : nullptr;
  if (f != nullptr) {
    const char* address = static_cast<const char*>(info->si_addr);
    const std::size_t reach =
        f->stack.guarded ? static_cast<std::size_t>(sysconf(_SC_PAGESIZE)) : overflow_reach;
    if (address < f->stack.bottom && address >= f->stack.bottom - reach) {
      report_overflow(*f, f->stack.guarded);
    }
  }
  chain_to_previous(sig, info, context);
}

void install_process_handler() noexcept {
  struct sigaction action {};
  action.sa_sigaction = on_fault;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  sigaction(SIGSEGV, &action, &previous_segv);
  sigaction(SIGBUS, &action, &previous_bus);
}

// alternate_stack: a worker thread's signal stack, released when the thread
// exits (spare workers retire).
struct alternate_stack {
  void* memory = nullptr;
  ~alternate_stack() {
    if (memory == nullptr) return;
    stack_t off{};
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, nullptr);
    std::free(memory);
  }
};

thread_local alternate_stack signal_stack;

}  // namespace

void install_overflow_handler() noexcept {
  static std::once_flag once;
  std::call_once(once, install_process_handler);
  signal_stack.memory = std::malloc(alt_stack_size);
  if (signal_stack.memory == nullptr) return;
  stack_t alt{};
  alt.ss_sp = signal_stack.memory;
  alt.ss_size = alt_stack_size;
  sigaltstack(&alt, nullptr);
}

void check_unguarded_overflow(const fiber& f, bool exiting) noexcept {
  if (f.stack.guarded) return;
  if (exiting) {
    const char* slot = f.stack.bottom - canary_bytes;
    for (std::size_t i = 0; i < canary_bytes; ++i) {
      if (slot[i] != 0) report_overflow(f, false);
    }
    return;
  }
  const char* sp = static_cast<const char*>(__builtin_frame_address(0));
  if (sp < f.stack.bottom + 256) report_overflow(f, false);
}

}  // namespace spindle::detail
