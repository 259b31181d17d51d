// lib/sync/rw_mutex.cpp: spindle::rw_mutex.
//
// All state sits under one spinlock: readers_ (-1 while a writer holds the
// lock, else the number of readers) and one FIFO of waiting readers and
// writers. A caller waits whenever it cannot enter or anyone is queued, so a
// waiting writer holds back new readers. Whoever brings readers_ to 0 admits
// the queue's head: a writer alone, or the run of readers at the front. The
// admitted are granted the lock under the spinlock and woken after it, so
// nobody is woken to find the lock taken again.
#include <mutex>

#include "spindle/error.hpp"
#include "spindle/sync.hpp"
#include "sync/wait_list.hpp"

namespace spindle {
namespace {

enum : std::uint32_t { reader = 0, writer = 1 };

// admit_next: readers_ is 0; hands the lock to the head of the queue.
void admit_next(detail::wait_queue& waiters, std::int64_t& readers, detail::wake_list& woken) {
  while (waiters.head != nullptr) {
    if (waiters.head->kind == writer && readers != 0) return;
    detail::wait_node* n = detail::pop_claimed(waiters);
    if (n == nullptr) return;
    n->granted = true;
    woken.append(*n);
    if (n->kind == writer) {
      readers = -1;
      return;
    }
    ++readers;
  }
}

void wait_as(std::uint32_t kind, detail::spinlock_ref lock, detail::wait_queue& waiters) {
  detail::wait_node self;
  self.kind = kind;
  detail::push_back(waiters, self);
  self.parked.park(lock);
}

}  // namespace

void rw_mutex::lock() {
  detail::primitive_lock_ref lock(lock_);
  lock.lock();
  if (readers_ == 0 && waiters_.head == nullptr) {
    readers_ = -1;
    lock.unlock();
    return;
  }
  wait_as(writer, lock, waiters_);
}

bool rw_mutex::try_lock() noexcept {
  detail::primitive_lock_ref lock(lock_);
  std::lock_guard guard(lock);
  if (readers_ != 0 || waiters_.head != nullptr) return false;
  readers_ = -1;
  return true;
}

void rw_mutex::unlock() {
  detail::wake_list woken;
  {
    detail::primitive_lock_ref lock(lock_);
    std::lock_guard guard(lock);
    if (readers_ != -1) throw usage_error("unlock of rw_mutex not locked exclusively");
    readers_ = 0;
    admit_next(waiters_, readers_, woken);
  }
  woken.wake_all();
}

void rw_mutex::lock_shared() {
  detail::primitive_lock_ref lock(lock_);
  lock.lock();
  if (readers_ >= 0 && waiters_.head == nullptr) {
    ++readers_;
    lock.unlock();
    return;
  }
  wait_as(reader, lock, waiters_);
}

bool rw_mutex::try_lock_shared() noexcept {
  detail::primitive_lock_ref lock(lock_);
  std::lock_guard guard(lock);
  if (readers_ < 0 || waiters_.head != nullptr) return false;
  ++readers_;
  return true;
}

void rw_mutex::unlock_shared() {
  detail::wake_list woken;
  {
    detail::primitive_lock_ref lock(lock_);
    std::lock_guard guard(lock);
    if (readers_ <= 0) throw usage_error("unlock_shared of rw_mutex not locked shared");
    if (--readers_ == 0) admit_next(waiters_, readers_, woken);
  }
  woken.wake_all();
}

}  // namespace spindle
