// tests/wait.hpp: waiting, in a test, for a condition that the runtime or
// other threads make true by themselves (thread retirement, a monitor's
// handoff, descriptors freed): polled from a plain thread, and bounded, so a
// failure shows as a failed check, not a hang. Never a stand-in for
// synchronisation that the test itself could do.
#pragma once

#include <chrono>
#include <thread>

namespace spindle_test {

template <class Condition>
bool wait_until(Condition done, std::chrono::seconds limit = std::chrono::seconds(20)) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace spindle_test
