// tests/model/checks.hpp: how the model tests judge an exploration
// (explorer.hpp): a protocol holds, no interleaving violates an invariant;
// or a mutated protocol is caught, some interleaving does, with a message
// naming what broke. Every model's test cases are one of the two.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "explorer.hpp"

namespace model {

// check_holds: no interleaving of m from `initial` violates an invariant.
// With a label, prints how many states that took.
template <class Model>
void check_holds(const Model& m, const typename Model::state& initial,
                 const char* label = nullptr) {
  const result r = explore(m, initial);
  INFO(r.describe());
  CHECK_FALSE(r.violated);
  if (label != nullptr) MESSAGE(std::string(label) << ": " << r.states << " states");
}

// require_caught: some interleaving of the mutated model violates an
// invariant, with `expected` in the message ("" accepts any message).
template <class Model>
void require_caught(const Model& mutated, const typename Model::state& initial,
                    const char* expected = "") {
  const result r = explore(mutated, initial);
  INFO(r.describe());
  REQUIRE(r.violated);
  CHECK(r.message.find(expected) != std::string::npos);
}

}  // namespace model
