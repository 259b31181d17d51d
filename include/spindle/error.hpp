// spindle/error.hpp: the exceptions spindle throws.
//
// Spindle reports three kinds of failure (docs/errors.md has the full table):
//   1. Expected outcomes are values, never exceptions: a closed channel, a
//      timeout, a full buffer.
//   2. Misuse throws spindle::usage_error, whose what() names the mistake
//      ("join called twice on one handle").
//   3. Exhausted resources (stack memory, threads) throw
//      spindle::resource_error, a std::system_error carrying the errno.
#pragma once

#include <stdexcept>
#include <system_error>

namespace spindle {

// usage_error: the program used a spindle object the wrong way.
class usage_error : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// resource_error: the operating system refused memory, a thread or a descriptor.
class resource_error : public std::system_error {
 public:
  using std::system_error::system_error;
};

}  // namespace spindle
