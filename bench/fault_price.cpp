// bench/fault_price.cpp: what this machine charges for a first touch of a
// page, the price that bounds parked_memory's spawn-all (bench/README.md).
//
// A parked fiber costs one page of its own: its stack's top page, 4 KiB
// into a stack whose next neighbour starts a whole stack size further on
// (256 KiB by default, plus its guard page). Go packs its 2 KiB goroutine
// stacks into a dense heap. So spawning a million fibers takes a million
// page faults spread thinly over 260 GB of address space, each also needing
// page-table pages of its own, and Go takes about two thirds as many, side
// by side. On bare metal a fault costs well under a microsecond; on a
// virtual machine with shadow page tables it can cost 10-20 us, and then
// those faults are most of spawn-all's time, whatever the runtime does.
//
// Usage: fault_price [PAGES [STRIDE_KIB]]  (default 300000 pages, 260 KiB)
// Prints microseconds per page for a first touch of PAGES pages, one per
// STRIDE_KIB (sparse, as fiber stacks) and one per 4 KiB (dense, as Go's
// heap), each from one thread and from two threads sharing the pages, and
// for a second touch of the sparse pages.
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

// touch_pages: writes one byte near the top of `pages` pages `stride` bytes
// apart from `threads` threads (page i from thread i % threads); returns
// microseconds of wall time per page.
double touch_pages(char* base, std::size_t pages, std::size_t stride, unsigned threads) {
  const auto start = clock_type::now();
  std::vector<std::thread> touchers;
  for (unsigned t = 0; t < threads; ++t) {
    touchers.emplace_back([=] {
      for (std::size_t i = t; i < pages; i += threads) base[i * stride + stride - 64] += 1;
    });
  }
  for (auto& toucher : touchers) toucher.join();
  const std::chrono::duration<double, std::micro> spent = clock_type::now() - start;
  return spent.count() / static_cast<double>(pages);
}

// fresh_region: address space for `pages` pages `stride` apart, nothing committed.
char* fresh_region(std::size_t pages, std::size_t stride) {
  void* p = mmap(nullptr, pages * stride, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    std::perror("fault_price: mmap");
    std::exit(1);
  }
  return static_cast<char*>(p);
}

void report(const char* what, std::size_t pages, std::size_t stride, unsigned threads) {
  char* region = fresh_region(pages, stride);
  const double first = touch_pages(region, pages, stride, threads);
  const double second = touch_pages(region, pages, stride, threads);
  std::printf(
      "%-7s stride %4zu KiB, %u thread%s: first touch %6.2f us/page, second %6.3f us/page\n", what,
      stride / 1024, threads, threads == 1 ? " " : "s", first, second);
  munmap(region, pages * stride);
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t pages = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 300000;
  const std::size_t stride = (argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 260) * 1024;
  if (pages == 0 || stride < 4096) {
    std::fprintf(stderr, "usage: fault_price [PAGES [STRIDE_KIB >= 4]]\n");
    return 2;
  }
  std::printf("%zu pages\n", pages);
  for (unsigned threads : {1u, 2u}) {
    report("sparse", pages, stride, threads);
    report("dense", pages, 4096, threads);
  }
  return 0;
}
