// tests/chan/chan_window.hpp: the test-only window into a channel: how many
// parties are parked on it. Lets a test wait (by yielding) until a sender or
// receiver has really parked, instead of sleeping and hoping.
#pragma once

#include <cstddef>
#include <spindle/chan.hpp>
#include <spindle/go.hpp>

#include "chan/chan_core.hpp"

namespace chan_window {

template <class T>
std::size_t parked_senders(const spindle::chan<T>& c) {
  return spindle::detail::channel::of(c.core_or_nil()).parked_senders();
}

template <class T>
std::size_t parked_receivers(const spindle::chan<T>& c) {
  return spindle::detail::channel::of(c.core_or_nil()).parked_receivers();
}

// until: yields (fiber or thread) until `done()` holds. Bounded by the test's
// meson timeout, never by a sleep.
template <class Predicate>
void until(Predicate done) {
  while (!done()) spindle::yield();
}

}  // namespace chan_window
