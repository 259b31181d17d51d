// lib/sched/options.cpp: options from configure() and the environment.
#include "sched/options.hpp"

#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "context/stack_pool.hpp"
#include "sched/core.hpp"
#include "spindle/error.hpp"

namespace spindle {
namespace {

std::mutex options_mutex;
bool options_set = false;     // guarded by options_mutex
bool options_frozen = false;  // guarded by options_mutex
options configured;           // guarded by options_mutex

// parse_size: "65536", "64K", "2M", "1G".
std::size_t parse_size(const char* name, const char* text) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long value = std::strtoull(text, &end, 10);
  std::size_t scale = 1;
  if (end != nullptr && *end != '\0') {
    switch (*end) {
      case 'k':
      case 'K':
        scale = 1u << 10;
        break;
      case 'm':
      case 'M':
        scale = 1u << 20;
        break;
      case 'g':
      case 'G':
        scale = 1u << 30;
        break;
      default:
        end = nullptr;
    }
    if (end != nullptr && end[1] != '\0') end = nullptr;
  }
  if (errno != 0 || end == nullptr || end == text) {
    throw usage_error(std::string("spindle: environment variable ") + name + "=" + text +
                      " is not a number");
  }
  return static_cast<std::size_t>(value) * scale;
}

void read_env(const char* name, auto&& apply) {
  if (const char* text = std::getenv(name); text != nullptr && *text != '\0') {
    apply(parse_size(name, text));
  }
}

long read_long(const char* path, const char* prefix_skip = nullptr) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word)) return -1;
  if (prefix_skip != nullptr && word == prefix_skip) return -1;
  try {
    return std::stol(word);
  } catch (...) {
    return -1;
  }
}

// cgroup_cpu_limit: the CPU quota in CPUs (rounded up), or 0 when unlimited.
std::size_t cgroup_cpu_limit() {
  std::ifstream v2("/sys/fs/cgroup/cpu.max");
  std::string quota, period;
  if (v2 >> quota >> period) {
    if (quota == "max") return 0;
    const double q = std::stod(quota), p = std::stod(period);
    return p > 0 ? static_cast<std::size_t>(std::ceil(q / p)) : 0;
  }
  const long q = read_long("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
  const long p = read_long("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  if (q <= 0 || p <= 0) return 0;
  return static_cast<std::size_t>((q + p - 1) / p);
}

std::size_t max_map_count() {
  const long n = read_long("/proc/sys/vm/max_map_count");
  return n > 0 ? static_cast<std::size_t>(n) : 65530;
}

}  // namespace

options options_from_environment() {
  options o;
  read_env("SPINDLE_PROCS", [&](std::size_t v) { o.procs = v; });
  read_env("SPINDLE_STACK_SIZE", [&](std::size_t v) { o.stack_size = v; });
  read_env("SPINDLE_GUARDED_STACKS", [&](std::size_t v) { o.guarded_stacks = v; });
  read_env("SPINDLE_GUARD_REGIONS", [&](std::size_t v) { o.guard_regions = v != 0; });
  read_env("SPINDLE_SPIN_US", [&](std::size_t v) { o.spin = std::chrono::microseconds(v); });
  read_env("SPINDLE_BALANCE_US",
           [&](std::size_t v) { o.balance_interval = std::chrono::microseconds(v); });
  read_env("SPINDLE_BLOCKED_US",
           [&](std::size_t v) { o.blocked_threshold = std::chrono::microseconds(v); });
  read_env("SPINDLE_HOG_US",
           [&](std::size_t v) { o.hog_threshold = std::chrono::microseconds(v); });
  read_env("SPINDLE_MAX_THREADS", [&](std::size_t v) { o.max_threads = v; });
  read_env("SPINDLE_RETIRE_MS",
           [&](std::size_t v) { o.retire_after = std::chrono::milliseconds(v); });
  read_env("SPINDLE_TIMER_SLACK_US",
           [&](std::size_t v) { o.timer_slack = std::chrono::microseconds(v); });
  read_env("SPINDLE_REPORT_STALLS", [&](std::size_t v) { o.report_stalls = v != 0; });
  read_env("SPINDLE_COMPACTION", [&](std::size_t v) { o.compaction = v != 0; });
  return o;
}

void configure(const options& opts) {
  std::lock_guard lock(options_mutex);
  if (options_frozen) throw usage_error("spindle::configure after the runtime started");
  configured = opts;
  options_set = true;
}

namespace detail {

std::size_t available_cpus() noexcept {
  cpu_set_t set;
  std::size_t cpus = 0;
  if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = static_cast<std::size_t>(CPU_COUNT(&set));
  if (cpus == 0) cpus = static_cast<std::size_t>(sysconf(_SC_NPROCESSORS_ONLN));
  try {
    const std::size_t quota = cgroup_cpu_limit();
    if (quota != 0 && quota < cpus) cpus = quota;
  } catch (...) {
  }
  return cpus > 0 ? cpus : 1;
}

options freeze_options() {
  std::lock_guard lock(options_mutex);
  options o = options_set ? configured : options_from_environment();
  if (o.procs == 0) o.procs = available_cpus();
  if (o.stack_size < 16 * 1024) o.stack_size = 16 * 1024;
  o.guard_regions = o.guard_regions && kernel_has_guard_regions();
  if (o.guarded_stacks == options::auto_guarded_stacks && !o.guard_regions)
    o.guarded_stacks = max_map_count() / 4;
  if (o.balance_interval.count() <= 0) o.balance_interval = std::chrono::microseconds(1000);
  if (o.max_threads < o.procs + 1) o.max_threads = o.procs + 1;
  options_frozen = true;
  configured = o;
  options_set = true;
  return o;
}

void shuffle(fiber_batch& batch, std::uint64_t& random_state) noexcept {
  for (std::uint32_t i = batch.size; i > 1; --i) {
    random_state ^= random_state << 13;
    random_state ^= random_state >> 7;
    random_state ^= random_state << 17;
    std::swap(batch.items[i - 1], batch.items[random_state % i]);
  }
}

}  // namespace detail
}  // namespace spindle
