// tests/guard_regions.hpp: whether this kernel has guard regions
// (madvise MADV_GUARD_INSTALL, Linux 6.13+), which the stack pool prefers
// to mprotect'ed guard pages: tests expect different counts with and without.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>

namespace spindle_test {

inline bool kernel_has_guard_regions() {
  constexpr int madv_guard_install = 102;
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  void* p = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  const bool ok = madvise(p, page, madv_guard_install) == 0;
  munmap(p, page);
  return ok;
}

}  // namespace spindle_test
