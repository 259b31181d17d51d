// tests/sched/exhaust_test.cpp: the runtime out of memory for stacks and
// refused new threads: a documented error or one diagnostic, the work
// already running carries on, and the runtime recovers.
//
// Stacks run out under a lowered RLIMIT_AS. Threads are refused by this
// program's own pthread_create, which interposes the C library's (found with
// dlsym(RTLD_NEXT)) and fails with EAGAIN while refuse_threads is set.
// AddressSanitizer and ThreadSanitizer reserve terabytes of shadow memory
// (RLIMIT_AS cannot be lowered under them) and intercept pthread_create
// themselves, so both tests are skipped in those builds.
#include <dlfcn.h>
#include <doctest/doctest.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <spindle/spindle.hpp>
#include <string>
#include <thread>
#include <vector>

#include "wait.hpp"

using namespace std::chrono_literals;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SPINDLE_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SPINDLE_TEST_SANITIZED 1
#endif
#endif
#ifndef SPINDLE_TEST_SANITIZED
#define SPINDLE_TEST_SANITIZED 0
#endif

namespace {

std::atomic<bool> refuse_threads{false};
std::atomic<int> threads_refused{0};

// stderr_capture: while alive, what the process writes to standard error
// goes to a memory file; text() reads it.
class stderr_capture {
 public:
  stderr_capture() : file_(memfd_create("stderr", MFD_CLOEXEC)), saved_(dup(2)) {
    REQUIRE(file_ >= 0);
    std::fflush(stderr);
    dup2(file_, 2);
  }
  stderr_capture(const stderr_capture&) = delete;
  stderr_capture& operator=(const stderr_capture&) = delete;
  ~stderr_capture() {
    std::fflush(stderr);
    dup2(saved_, 2);
    close(saved_);
    close(file_);
  }
  std::string text() const {
    std::string all;
    char buf[4096];
    for (off_t at = 0;;) {
      const ssize_t n = pread(file_, buf, sizeof buf, at);
      if (n <= 0) return all;
      all.append(buf, static_cast<std::size_t>(n));
      at += n;
    }
  }

 private:
  int file_;
  int saved_;
};

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// address_space: this process's virtual memory size in bytes.
std::size_t address_space() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0;
  statm >> pages;
  return pages * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

// reserve_heap: grows malloc's heap by `bytes` and keeps it (no trimming),
// so that under a lowered RLIMIT_AS the fibers' task objects come from
// memory the heap already has and the stack slabs are what runs out, not
// malloc (which would throw std::bad_alloc from go()).
void reserve_heap(std::size_t bytes) {
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(4 * bytes));
  std::vector<std::unique_ptr<char[]>> blocks;
  for (std::size_t used = 0; used < bytes; used += 1024) {
    blocks.push_back(std::make_unique<char[]>(1024));
  }
}

// blockers: fibers blocked in a raw read() of a pipe, each until release()
// writes its byte: threads stuck in the kernel, as in a blocking system call.
class blockers {
 public:
  explicit blockers(std::size_t n) {
    REQUIRE(pipe(pipe_) == 0);
    for (std::size_t i = 0; i < n; ++i) {
      fibers_.push_back(spindle::go([fd = pipe_[0]] {
        char byte;
        return ::read(fd, &byte, 1) == 1;
      }));
    }
  }
  blockers(const blockers&) = delete;
  blockers& operator=(const blockers&) = delete;
  ~blockers() {
    close(pipe_[0]);
    close(pipe_[1]);
  }
  // release: lets every blocker return; true if each read its byte.
  bool release() {
    const std::string bytes(fibers_.size(), 'x');
    if (::write(pipe_[1], bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
      return false;
    }
    bool all = true;
    for (auto& f : fibers_) all = f.join() && all;
    return all;
  }

 private:
  int pipe_[2];
  std::vector<spindle::handle<bool>> fibers_;
};

// timer_work: a fiber that needs a processor now and then.
spindle::handle<int> timer_work(std::atomic<bool>& done) {
  return spindle::go([&done] {
    for (int i = 0; i < 10; ++i) spindle::sleep_for(1ms);
    done = true;
    return 10;
  });
}

}  // namespace

#if !SPINDLE_TEST_SANITIZED
// pthread_create: the C library's, or EAGAIN while refuse_threads is set.
extern "C" int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*),
                              void* arg) {
  using real_create = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
  static const auto real = reinterpret_cast<real_create>(dlsym(RTLD_NEXT, "pthread_create"));
  if (refuse_threads.load()) {
    threads_refused.fetch_add(1);
    return EAGAIN;
  }
  return real(thread, attr, start, arg);
}
#endif

TEST_CASE("out of stack memory: resource_error; the running fibers carry on; freed stacks serve" *
          doctest::skip(SPINDLE_TEST_SANITIZED)) {
  constexpr std::size_t most = 100'000;
  spindle::chan<int> work(0);
  spindle::chan<int> results(most);
  std::vector<spindle::handle<void>> held;
  held.reserve(most);
  spindle::go([] {}).join();  // the runtime is up
  reserve_heap(16u << 20);
  rlimit saved{};
  REQUIRE(getrlimit(RLIMIT_AS, &saved) == 0);
  rlimit lower = saved;
  lower.rlim_cur = address_space() + (256u << 20);  // about four slabs of stacks
  REQUIRE(setrlimit(RLIMIT_AS, &lower) == 0);

  // held_fiber: waits for a value and answers it plus one; ends on close.
  auto held_fiber = [&work, &results] {
    if (auto v = work.recv()) results.send(*v + 1);
  };
  // finish: lets `count` held fibers answer; the sum of their answers.
  auto finish = [&work, &results](std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) work.send(static_cast<int>(i));
    long sum = 0;
    for (std::size_t i = 0; i < count; ++i) sum += *results.recv();
    return sum;
  };
  const auto sum_to = [](std::size_t k) { return static_cast<long>(k * (k + 1) / 2); };

  std::optional<spindle::resource_error> refused;
  while (held.size() < most / 2) {
    try {
      held.push_back(spindle::go(held_fiber));
    } catch (const spindle::resource_error& e) {
      refused = e;
      break;
    }
  }
  REQUIRE(refused.has_value());
  CHECK(refused->code() == std::errc::not_enough_memory);
  CHECK(std::string(refused->what()) ==
        "spindle: cannot reserve memory for fiber stacks: Cannot allocate memory");
  const std::size_t n = held.size();
  CHECK(n > 100);

  // Room for the heap (the new fibers' tasks: the held handles keep the old
  // ones), but far too little for another slab of stacks (64 MiB).
  lower.rlim_cur = address_space() + (16u << 20);
  REQUIRE(setrlimit(RLIMIT_AS, &lower) == 0);

  // The fibers already running carry on: half of them finish.
  CHECK(finish(n / 2) == sum_to(n / 2));
  // Their stacks are free again, and new fibers get them, still under the
  // limit (up to 64 per worker thread stay in that thread's cache).
  for (std::size_t i = 0; i < n / 4; ++i) held.push_back(spindle::go(held_fiber));
  CHECK(finish(n / 2) == sum_to(n / 2));

  REQUIRE(setrlimit(RLIMIT_AS, &saved) == 0);
  work.close();
  for (auto& h : held) h.join();
}

TEST_CASE("refused threads: one diagnostic, the work carries on, and handoffs resume" *
          doctest::skip(SPINDLE_TEST_SANITIZED)) {
  spindle::go([] {}).join();  // the runtime is up
  const std::string diagnostic = "spindle: cannot start a worker thread";
  stderr_capture err;
  {
    // Every worker thread stuck in the kernel, with work waiting: the
    // monitor wants spares, and each thread it tries to start is refused.
    refuse_threads = true;
    blockers stuck(spindle::runtime_stats().threads + 2);
    std::atomic<bool> done{false};
    auto work = timer_work(done);
    CHECK(spindle_test::wait_until([] { return threads_refused.load() >= 3; }));
    refuse_threads = false;
    CHECK(stuck.release());
    CHECK(work.join() == 10);  // late, but done
  }
  CHECK(count_of(err.text(), diagnostic) == 1);

  // Threads can be started again: a stuck processor is handed off, so the
  // timer work finishes while the blockers still block.
  const auto created = spindle::runtime_stats().threads_created;
  blockers stuck(spindle::runtime_stats().threads + 2);
  std::atomic<bool> done{false};
  auto work = timer_work(done);
  CHECK(spindle_test::wait_until([&done] { return done.load(); }));
  CHECK(stuck.release());
  CHECK(work.join() == 10);
  CHECK(spindle::runtime_stats().threads_created > created);
  CHECK(count_of(err.text(), diagnostic) == 1);
}
