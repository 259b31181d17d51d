// tests/sched/overflow_child.cpp: a program that overflows a fiber stack, for
// the death tests in overflow_test.cpp. Argument: "guarded" or "unguarded"
// (the parent sets SPINDLE_GUARDED_STACKS=0 for the latter, and
// SPINDLE_GUARD_REGIONS=0 for a guarded stack without guard regions).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <spindle/spindle.hpp>
#include <string>

namespace {

const char* start_of_stack = nullptr;

// descend: recurses in 1 KiB frames until `depth` bytes below the fiber's start.
int descend(std::size_t depth) {
  volatile char frame[1024];
  for (char& c : const_cast<char(&)[1024]>(frame)) c = 1;  // the whole frame is written
  const char* here = static_cast<const char*>(__builtin_frame_address(0));
  if (static_cast<std::size_t>(start_of_stack - here) >= depth) return frame[0];
  return descend(depth) + frame[0];
}

// protection_of: the permissions /proc/self/maps gives the mapping that
// holds `address` ("---p" for an mprotect'ed page, "rw-p" around a guard
// region, which does not split its mapping).
std::string protection_of(const void* address) {
  std::FILE* maps = std::fopen("/proc/self/maps", "r");
  if (maps == nullptr) return "unreadable";
  const auto a = reinterpret_cast<std::uintptr_t>(address);
  char line[512];
  std::string found = "unmapped";
  while (std::fgets(line, sizeof line, maps) != nullptr) {
    unsigned long low, high;
    char perms[5];
    if (std::sscanf(line, "%lx-%lx %4s", &low, &high, perms) == 3 && low <= a && a < high) {
      found = perms;
      break;
    }
  }
  std::fclose(maps);
  return found;
}

}  // namespace

// Prints to stderr the permissions of the mapping that holds the deep
// fiber's guard page ("guard page mapping: ---p"), then overflows.
int main(int argc, char** argv) {
  const bool guarded = argc > 1 && std::strcmp(argv[1], "guarded") == 0;
  constexpr std::size_t stack = 64 * 1024;
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  spindle::chan<const char*> started(1);
  spindle::chan<int> go_ahead(1);
  auto h = spindle::go({.stack_size = stack, .name = "deep"}, [=]() mutable {
    start_of_stack = static_cast<const char*>(__builtin_frame_address(0));
    started.send(start_of_stack);
    go_ahead.recv();
    // Guarded: run into the guard page. Unguarded: end just past the bottom,
    // inside the unused guard slot, and return as if nothing happened.
    return descend(guarded ? 4 * stack : stack + 256);
  });
  // The stack is [guard page][64 KiB], page-aligned, and its first frame
  // lies in its top page.
  const auto frame = reinterpret_cast<std::uintptr_t>(*started.recv());
  const std::uintptr_t top = (frame + page - 1) / page * page;
  const void* guard_page = reinterpret_cast<const void*>(top - stack - page);
  std::fprintf(stderr, "guard page mapping: %s\n", protection_of(guard_page).c_str());
  go_ahead.send(1);
  std::printf("fiber returned %d: the overflow went unnoticed\n", h.join());
  return 0;
}
