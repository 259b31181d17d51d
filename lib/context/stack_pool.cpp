// lib/context/stack_pool.cpp: slabs, guard pages and free lists; see stack_pool.hpp.
#include "context/stack_pool.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <map>
#include <mutex>
#include <new>
#include <system_error>
#include <vector>

#include "context/sanitizers.hpp"
#include "spindle/error.hpp"

namespace spindle::detail {
namespace {

constexpr std::size_t slab_bytes = 64u << 20;
constexpr std::size_t cache_batch = 32;

std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

std::size_t round_to_pages(std::size_t n) noexcept {
  const std::size_t page = page_size();
  return (n + page - 1) / page * page;
}

// size_class: the free stacks and the slab being carved for one stack size.
// Free stacks are kept as descriptors in an array, not linked through the
// stacks themselves: reusing a stack then touches no cold memory.
struct size_class {
  std::vector<fiber_stack> free;
  char* carve_next = nullptr;   // next unused [guard][stack] in the current slab
  char* carve_end = nullptr;    // end of the stacks; the slab's records follow
  char* record_next = nullptr;  // the record slot of the stack carve_next
};

struct pool {
  std::mutex mutex;  // guards classes and the carving state
  std::map<std::size_t, size_class> classes;
  size_class* default_class = nullptr;  // classes[default_size], set by configure
  std::size_t default_size = 256 * 1024;
  std::size_t guard_budget = 16 * 1024;
  bool guard_regions = false;
  std::size_t guards_promised = 0;  // stacks carved with a guard, installed or pending
  std::atomic<std::size_t> reserved{0}, guarded{0}, slabs{0};
};

pool& the_pool() {
  static pool* p = new pool;  // never destroyed: stacks may be released during exit
  return *p;
}

// new_slab: one mapping of [guard][stack] x count, then count record slots.
void new_slab(size_class& c, std::size_t stride) {
  const std::size_t count = slab_bytes / stride > 0 ? slab_bytes / stride : 1;
  const std::size_t records = round_to_pages(count * stack_record_bytes);
  void* mem = mmap(nullptr, count * stride + records, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) {
    throw resource_error(errno, std::generic_category(),
                         "spindle: cannot reserve memory for fiber stacks");
  }
  c.carve_next = static_cast<char*>(mem);
  c.carve_end = c.carve_next + count * stride;
  c.record_next = c.carve_end;
  the_pool().slabs.fetch_add(1, std::memory_order_relaxed);
}

// MADV_GUARD_INSTALL, from Linux 6.13's <linux/mman.h>, which older
// systems' headers lack.
constexpr int madv_guard_install = 102;

// carve: a never-used stack from the class's slab; caller holds the pool mutex.
fiber_stack carve(pool& p, size_class& c, std::size_t size) {
  const std::size_t stride = size + page_size();
  if (c.carve_next == c.carve_end) new_slab(c, stride);
  char* guard = c.carve_next;
  c.carve_next += stride;
  fiber_stack s{guard + page_size(), size, c.record_next, false, true};
  c.record_next += stack_record_bytes;
  if (p.guards_promised < p.guard_budget) {
    if (p.guard_regions) {
      s.guard_pending = true;
      ++p.guards_promised;
    } else if (mprotect(guard, page_size(), PROT_NONE) == 0) {
      s.guarded = true;
      ++p.guards_promised;
      p.guarded.fetch_add(1, std::memory_order_relaxed);
    }
  }
  p.reserved.fetch_add(1, std::memory_order_relaxed);
  return s;
}

size_class& class_locked(pool& p, std::size_t size) {
  return size == p.default_size && p.default_class ? *p.default_class : p.classes[size];
}

fiber_stack take_locked(pool& p, std::size_t size) {
  size_class& c = class_locked(p, size);
  if (c.free.empty()) return carve(p, c, size);
  const fiber_stack s = c.free.back();
  c.free.pop_back();
  return s;
}

// thread_cache: default-size stacks kept by one thread, moved in batches.
struct thread_cache {
  static constexpr std::size_t capacity = 2 * cache_batch;
  fiber_stack stacks[capacity];
  std::size_t count = 0;

  ~thread_cache() {
    pool& p = the_pool();
    std::lock_guard lock(p.mutex);
    size_class& c = class_locked(p, p.default_size);
    c.free.insert(c.free.end(), stacks, stacks + count);
    count = 0;
  }
};

__attribute__((tls_model("initial-exec"))) thread_local thread_cache cache;

void refill(thread_cache& tc, pool& p) {
  std::lock_guard lock(p.mutex);
  size_class& c = class_locked(p, p.default_size);
  while (tc.count < cache_batch) {
    if (c.free.empty()) {
      tc.stacks[tc.count++] = carve(p, c, p.default_size);
    } else {
      tc.stacks[tc.count++] = c.free.back();
      c.free.pop_back();
    }
  }
}

void spill(thread_cache& tc, pool& p) {
  std::lock_guard lock(p.mutex);
  size_class& c = class_locked(p, p.default_size);
  c.free.insert(c.free.end(), tc.stacks + tc.count - cache_batch, tc.stacks + tc.count);
  tc.count -= cache_batch;
}

}  // namespace

bool kernel_has_guard_regions() noexcept {
  static const bool available = [] {
    void* page =
        mmap(nullptr, page_size(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) return false;
    const bool ok = madvise(page, page_size(), madv_guard_install) == 0;
    munmap(page, page_size());
    return ok;
  }();
  return available;
}

void configure_stack_pool(const stack_pool_limits& limits) noexcept {
  pool& p = the_pool();
  std::lock_guard lock(p.mutex);
  p.default_size = round_to_pages(limits.default_size);
  p.guard_budget = limits.guarded_stacks;
  p.guard_regions = limits.guard_regions;
  p.default_class = &p.classes[p.default_size];
}

fiber_stack allocate_stack(std::size_t size) {
  pool& p = the_pool();
  size = size == 0 ? p.default_size : round_to_pages(size);
  if (size != p.default_size) {
    std::lock_guard lock(p.mutex);
    return take_locked(p, size);
  }
  thread_cache& tc = cache;
  if (tc.count == 0) refill(tc, p);
  return tc.stacks[--tc.count];
}

void install_pending_guard(fiber_stack& stack) noexcept {
  stack.guard_pending = false;
  stack.guarded = madvise(stack.bottom - page_size(), page_size(), madv_guard_install) == 0;
  if (stack.guarded) the_pool().guarded.fetch_add(1, std::memory_order_relaxed);
}

void release_stack(fiber_stack stack) noexcept {
  unpoison_stack(stack.bottom, stack.size);
  stack.fresh = false;
  pool& p = the_pool();
  if (stack.size != p.default_size) {
    std::lock_guard lock(p.mutex);
    p.classes[stack.size].free.push_back(stack);
    return;
  }
  thread_cache& tc = cache;
  if (tc.count == thread_cache::capacity) spill(tc, p);
  tc.stacks[tc.count++] = stack;
}

stack_pool_counters stack_pool_counts() noexcept {
  pool& p = the_pool();
  return {p.reserved.load(std::memory_order_relaxed), p.guarded.load(std::memory_order_relaxed),
          p.slabs.load(std::memory_order_relaxed)};
}

}  // namespace spindle::detail
