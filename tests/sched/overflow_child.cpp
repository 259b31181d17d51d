// tests/sched/overflow_child.cpp: a program that overflows a fiber stack, for
// the death tests in overflow_test.cpp. Argument: "guarded" or "unguarded"
// (the parent sets SPINDLE_GUARDED_STACKS=0 for the latter).
#include <cstdio>
#include <cstring>
#include <spindle/spindle.hpp>

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

}  // namespace

int main(int argc, char** argv) {
  const bool guarded = argc > 1 && std::strcmp(argv[1], "guarded") == 0;
  constexpr std::size_t stack = 64 * 1024;
  auto h = spindle::go({.stack_size = stack, .name = "deep"}, [guarded] {
    start_of_stack = static_cast<const char*>(__builtin_frame_address(0));
    // Guarded: run into the guard page. Unguarded: end just past the bottom,
    // inside the unused guard slot, and return as if nothing happened.
    return descend(guarded ? 4 * stack : stack + 256);
  });
  std::printf("fiber returned %d: the overflow went unnoticed\n", h.join());
  return 0;
}
