// spindle/sync.hpp: fiber-aware synchronisation: wait_group, mutex, rw_mutex,
// cond, once, semaphore.
//
// Each primitive works from fibers and from plain threads, mixed: where a
// call blocks, it parks a calling fiber (its worker runs other fibers) and
// blocks a calling plain thread. Waiters are served first in, first out, and
// what they wait for (the lock, a permit) is handed to them directly, so no
// waiter starves. The members are defined in lib/sync/; the objects hold only
// a lock word, counters and the ends of their wait queue, and may be neither
// copied nor moved.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <type_traits>
#include <utility>

#include "spindle/detail/deadline.hpp"
#include "spindle/detail/wait_queue.hpp"

namespace spindle {

// wait_group: waits for a collection of fibers or threads to finish (Go's
// sync.WaitGroup).
//
//   spindle::wait_group wg;
//   for (auto& job : jobs) { wg.add(1); spindle::go([&] { run(job); wg.done(); }); }
//   wg.wait();
class wait_group {
 public:
  wait_group() noexcept = default;
  wait_group(const wait_group&) = delete;
  wait_group& operator=(const wait_group&) = delete;

  // add: adds delta (may be negative) to the counter; when it reaches zero,
  // every waiter wakes. Does not block. Throws usage_error("negative
  // wait_group counter") if the counter drops below zero. The counter holds
  // 32 bits.
  void add(std::ptrdiff_t delta);
  // done: add(-1).
  void done() { add(-1); }
  // wait: blocks until the counter is zero; returns at once if it is.
  void wait();
  // wait_for, wait_until: as wait, but give up when the timeout passes;
  // return whether the counter reached zero.
  template <class Rep, class Period>
  bool wait_for(const std::chrono::duration<Rep, Period>& timeout) {
    return wait_until_deadline(detail::deadline_after(timeout));
  }
  template <class Clock, class Duration>
  bool wait_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    return wait_until_deadline(detail::deadline_at(deadline));
  }

 private:
  bool wait_until_deadline(detail::time_point deadline);

  // state_: the counter (signed, high 32 bits) and the number of parked
  // waiters (low 32 bits), in one word so that the add() that brings the
  // counter to zero knows, without touching anything else, whether anyone
  // must be woken (see lib/sync/wait_group.cpp).
  std::atomic<std::uint64_t> state_{0};
  std::atomic<std::uint32_t> lock_{0};  // guards waiters_ and the waiter count's increments
  detail::wait_queue waiters_;
};

// mutex: a mutual-exclusion lock that parks fibers (Lockable: works with
// std::lock_guard, std::unique_lock, std::scoped_lock).
//
//   spindle::mutex m;
//   { std::lock_guard guard(m); ++shared_counter; }
//
// Uncontended lock/unlock is one atomic operation each. Under contention a
// woken waiter competes with newcomers once; if it loses, it goes back to the
// front of the queue and the mutex switches to handoff: the next unlock
// passes ownership straight to it (Go's starvation mode, without a clock).
class mutex {
 public:
  mutex() noexcept = default;
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;

  // lock: acquires the mutex, blocking while another holder has it. Not
  // recursive: locking a mutex the caller holds deadlocks.
  void lock() {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    if ((s & (locked_bit | handoff_bit)) == 0 &&
        state_.compare_exchange_weak(s, s | locked_bit, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      return;
    }
    lock_slow();
  }
  // try_lock: acquires the mutex if it is free; never blocks.
  bool try_lock() noexcept {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    return (s & (locked_bit | handoff_bit)) == 0 &&
           state_.compare_exchange_strong(s, s | locked_bit, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  // unlock: releases the mutex, handing it to or waking the first waiter.
  // Does not block. Throws usage_error("unlock of unlocked mutex").
  void unlock() {
    std::uint32_t s = locked_bit;
    if (!state_.compare_exchange_strong(s, 0, std::memory_order_release,
                                        std::memory_order_relaxed)) {
      unlock_slow();
    }
  }

 private:
  static constexpr std::uint32_t locked_bit = 1, waiters_bit = 2, handoff_bit = 4;
  void lock_slow();
  void unlock_slow();

  std::atomic<std::uint32_t> state_{0};  // locked_bit | waiters_bit | handoff_bit
  std::atomic<std::uint32_t> lock_{0};   // guards waiters_ and the waiters/handoff bits
  detail::wait_queue waiters_;
};

// rw_mutex: a readers-writer lock (SharedLockable: works with std::shared_lock).
// Writers are not starved: once a writer waits, new readers queue behind it;
// an unlocking writer admits every queued reader ahead of the next writer.
//
//   spindle::rw_mutex m;
//   { std::shared_lock read(m); lookup(); }
//   { std::lock_guard write(m); update(); }
class rw_mutex {
 public:
  rw_mutex() noexcept = default;
  rw_mutex(const rw_mutex&) = delete;
  rw_mutex& operator=(const rw_mutex&) = delete;

  // lock: acquires exclusive ownership; blocks while readers or a writer hold it.
  void lock();
  // try_lock: acquires exclusive ownership if it is free; never blocks.
  bool try_lock() noexcept;
  // unlock: releases exclusive ownership, admitting the next waiters. Does
  // not block. Throws usage_error if not held exclusively.
  void unlock();
  // lock_shared: acquires shared ownership; blocks while a writer holds or
  // awaits the lock.
  void lock_shared();
  // try_lock_shared: acquires shared ownership if that needs no waiting.
  bool try_lock_shared() noexcept;
  // unlock_shared: releases shared ownership. Does not block. Throws
  // usage_error if not held shared.
  void unlock_shared();

 private:
  std::atomic<std::uint32_t> lock_{0};  // guards everything below
  std::int64_t readers_ = 0;            // -1: a writer holds it; n > 0: n readers
  detail::wait_queue waiters_;          // readers and writers, in arrival order
};

// cond_status: how a timed cond wait ended.
enum class cond_status { notified, timeout };

// cond: a condition variable for spindle::mutex (std::condition_variable's
// shape). No spurious wake-ups, but another party may change the state
// between the notify and the wake: wait with a predicate.
//
//   std::unique_lock lock(m);
//   ready_cond.wait(lock, [&] { return ready; });
class cond {
 public:
  cond() noexcept = default;
  cond(const cond&) = delete;
  cond& operator=(const cond&) = delete;

  // wait: atomically releases `lock` and blocks until notified, then
  // re-acquires `lock` (blocking as mutex::lock does) before returning.
  void wait(std::unique_lock<mutex>& lock);
  template <class Predicate>
  void wait(std::unique_lock<mutex>& lock, Predicate ready) {
    while (!ready()) wait(lock);
  }
  // wait_for, wait_until: as wait, but stop waiting when the timeout passes.
  template <class Rep, class Period>
  cond_status wait_for(std::unique_lock<mutex>& lock,
                       const std::chrono::duration<Rep, Period>& timeout) {
    return wait_until_deadline(lock, detail::deadline_after(timeout));
  }
  template <class Clock, class Duration>
  cond_status wait_until(std::unique_lock<mutex>& lock,
                         const std::chrono::time_point<Clock, Duration>& deadline) {
    return wait_until_deadline(lock, detail::deadline_at(deadline));
  }
  // wait_for, wait_until with a predicate: return the predicate's last value.
  template <class Rep, class Period, class Predicate>
  bool wait_for(std::unique_lock<mutex>& lock, const std::chrono::duration<Rep, Period>& timeout,
                Predicate ready) {
    return wait_until_ready(lock, detail::deadline_after(timeout), ready);
  }
  template <class Clock, class Duration, class Predicate>
  bool wait_until(std::unique_lock<mutex>& lock,
                  const std::chrono::time_point<Clock, Duration>& deadline, Predicate ready) {
    return wait_until_ready(lock, detail::deadline_at(deadline), ready);
  }

  // notify_one: wakes the longest waiter, if any. Does not block.
  void notify_one() noexcept;
  // notify_all: wakes every waiter. Does not block.
  void notify_all() noexcept;

 private:
  cond_status wait_until_deadline(std::unique_lock<mutex>& lock, detail::time_point deadline);
  template <class Predicate>
  bool wait_until_ready(std::unique_lock<mutex>& lock, detail::time_point deadline,
                        Predicate& ready) {
    while (!ready()) {
      if (wait_until_deadline(lock, deadline) == cond_status::timeout) return ready();
    }
    return true;
  }

  std::atomic<std::uint32_t> lock_{0};  // guards waiters_
  detail::wait_queue waiters_;
};

// once: runs a function exactly once however many callers race (std::call_once).
//
//   static spindle::once init;
//   init.call([] { load_tables(); });
class once {
 public:
  once() noexcept = default;
  once(const once&) = delete;
  once& operator=(const once&) = delete;

  // call: runs f(args...) if no call has completed yet; other callers block
  // until it finishes. If f throws, the exception propagates to its caller
  // and the next waiting (or later) caller runs its own f.
  template <class F, class... Args>
  void call(F&& f, Args&&... args) {
    if (state_.load(std::memory_order_acquire) == done_state) return;
    if (!begin()) return;
    try {
      std::forward<F>(f)(std::forward<Args>(args)...);
    } catch (...) {
      finish(false);
      throw;
    }
    finish(true);
  }
  // done: whether a call has completed. Does not block.
  bool done() const noexcept { return state_.load(std::memory_order_acquire) == done_state; }

 private:
  static constexpr std::uint32_t idle_state = 0, running_state = 1, done_state = 2;
  // begin: true if the caller must run the function; false once it has run.
  // Blocks while another caller runs it.
  bool begin();
  void finish(bool succeeded) noexcept;

  std::atomic<std::uint32_t> state_{idle_state};  // written under lock_
  std::atomic<std::uint32_t> lock_{0};            // guards waiters_
  detail::wait_queue waiters_;
};

// semaphore: a counting semaphore.
//
//   spindle::semaphore slots(8);      // at most 8 at once
//   slots.acquire(); use(); slots.release();
class semaphore {
 public:
  explicit semaphore(std::size_t initial = 0) noexcept : permits_(initial) {}
  semaphore(const semaphore&) = delete;
  semaphore& operator=(const semaphore&) = delete;

  // acquire: takes one permit, blocking while there is none.
  void acquire();
  // try_acquire: takes a permit if one is free; never blocks.
  bool try_acquire() noexcept;
  // try_acquire_for, try_acquire_until: as acquire, but give up when the
  // timeout passes; return whether a permit was taken.
  template <class Rep, class Period>
  bool try_acquire_for(const std::chrono::duration<Rep, Period>& timeout) {
    return acquire_until(detail::deadline_after(timeout));
  }
  template <class Clock, class Duration>
  bool try_acquire_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    return acquire_until(detail::deadline_at(deadline));
  }
  // release: returns n permits, handing them to waiters first-come
  // first-served. Does not block.
  void release(std::size_t n = 1) noexcept;

 private:
  bool acquire_until(detail::time_point deadline);

  std::atomic<std::uint32_t> lock_{0};  // guards everything below
  std::size_t permits_;
  detail::wait_queue waiters_;
};

}  // namespace spindle
