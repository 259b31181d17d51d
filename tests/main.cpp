// tests/main.cpp: the doctest main shared by every test program.
//
// After the tests ran, it fails the program if the monitor's safety net ever
// had to deliver a wake-up: that only happens when the scheduler lost one.
#define DOCTEST_CONFIG_IMPLEMENT
// doctest's crash handlers would take signals that tests deliver to spindle
// (signal_notifier) and spindle's own stack-overflow handler; meson reports
// crashes anyway.
#define DOCTEST_CONFIG_NO_POSIX_SIGNALS
#include <doctest/doctest.h>

#include <cstdio>
#include <spindle/runtime.hpp>

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  const int result = context.run();
  if (context.shouldExit()) return result;
  const spindle::stats s = spindle::runtime_stats();
  if (s.safety_net_wakes != 0) {
    std::fprintf(stderr,
                 "FAILED: the monitor's safety net woke a processor %llu times (lost wake-ups)\n",
                 static_cast<unsigned long long>(s.safety_net_wakes));
    return 1;
  }
  return result;
}
