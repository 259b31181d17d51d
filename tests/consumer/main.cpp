// Smallest useful program against the installed or subproject spindle:
// start a fiber, wait for its result.
#include <spindle/spindle.hpp>

int main() {
  auto h = spindle::go([] { return 42; });
  return h.join() == 42 ? 0 : 1;
}
