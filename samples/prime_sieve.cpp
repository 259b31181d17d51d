// samples/prime_sieve.cpp: the concurrent prime sieve from the Go tour, in spindle.
//
// A generator fiber sends 2, 3, 4, ... down a channel; each prime found adds
// a filter fiber to the chain that drops multiples of that prime. Every
// number hops through one fiber per smaller prime: thousands of fibers and
// channel handoffs for the first few hundred primes.
//
//   prime_sieve [COUNT]   prints the first COUNT primes (default 100) and
//                         how long the sieve took.
//
// When main returns, the generator and the filters are still parked on
// their channels; spindle lets them be (they never run again) and the
// program exits normally, as a Go program would.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <spindle/spindle.hpp>

namespace {

void generate(spindle::chan<int> out) {
  for (int i = 2;; ++i) out.send(int(i));
}

void filter(spindle::chan<int> in, spindle::chan<int> out, int prime) {
  while (auto n = in.recv()) {
    if (*n % prime != 0) out.send(int(*n));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int count = argc > 1 ? std::atoi(argv[1]) : 100;
  const auto start = std::chrono::steady_clock::now();
  spindle::chan<int> source(0);
  spindle::go(generate, source);
  spindle::chan<int> numbers = source;
  int last = 0;
  for (int i = 0; i < count; ++i) {
    last = *numbers.recv();
    std::printf("%d%c", last, i + 1 == count ? '\n' : ' ');
    spindle::chan<int> next(0);
    spindle::go(filter, numbers, next, last);
    numbers = next;
  }
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("%d primes (the last is %d) through %d fibers in %.1f ms\n", count, last, count + 1,
              ms);
  return 0;
}
