// lib/time/time.cpp: sleep, timer, ticker and after, on the event loops' timer wheels.
//
// A timer_state is one heap entry plus what firing does: send on a channel,
// spawn a fiber, or (tickers) send and re-arm one period later. fire() runs
// on the owner of the loop it was armed on and never blocks: the channel has capacity 1 and is
// written with try_send. The state belongs to its timer or ticker object;
// destroying that object cancels the entry, waiting out a fire in progress,
// so fire() never touches a freed state. after()'s states have no owner and
// free themselves when they fire.
#include <thread>
#include <utility>

#include "io/event_loop.hpp"
#include "sched/park.hpp"
#include "sched/scheduler.hpp"
#include "spindle/error.hpp"
#include "spindle/go.hpp"
#include "spindle/time.hpp"

namespace spindle {
namespace detail {

class timer_state {
 public:
  enum class kind { send, call, tick, send_once_and_free };

  timer_state(kind k, std::chrono::nanoseconds d, std::function<void()> f = {})
      : kind_(k), function_(std::move(f)), period_ns_(d.count()) {
    entry_.fire = fire;
    entry_.owner = this;
    entry_.frees_itself = k == kind::send_once_and_free;
    if (k != kind::call) channel_ = chan<steady_time>(1);
  }

  void arm(std::chrono::nanoseconds d) {
    entry_.deadline_ns = steady_now_ns() + std::max<std::int64_t>(d.count(), 0);
    event_loop::current().add_timer(&entry_);
  }
  bool cancel() noexcept { return event_loop::cancel_timer(&entry_); }
  void set_period(std::chrono::nanoseconds period) noexcept { period_ns_ = period.count(); }
  const chan<steady_time>& channel() const noexcept { return channel_; }

 private:
  // owned_entry: the heap entry, with the way back to its state.
  struct owned_entry : timer_entry {
    timer_state* owner = nullptr;
  };

  static void fire(timer_entry* e) noexcept { static_cast<owned_entry*>(e)->owner->on_fire(); }

  void on_fire() noexcept {
    const steady_time now = std::chrono::steady_clock::now();
    switch (kind_) {
      case kind::send:
        channel_.try_send(steady_time(now));
        break;
      case kind::call:
        spawn_function();
        break;
      case kind::tick:
        channel_.try_send(steady_time(now));
        event_loop::rearm_timer(&entry_, next_tick(steady_now_ns()));
        break;
      case kind::send_once_and_free:
        channel_.try_send(steady_time(now));
        delete this;
        break;
    }
  }

  void spawn_function() noexcept {
    try {
      go(function_).detach();
    } catch (...) {
      // No stack for the function's fiber: nothing to run it on. The timer
      // is spent either way, as a Go AfterFunc whose goroutine failed.
    }
  }

  // next_tick: the first multiple of the period after now (missed ticks are dropped).
  std::int64_t next_tick(std::int64_t now) const noexcept {
    const std::int64_t behind = now - entry_.deadline_ns;
    return entry_.deadline_ns + period_ns_ * (1 + behind / period_ns_);
  }

  owned_entry entry_;
  kind kind_;
  std::function<void()> function_;
  std::int64_t period_ns_;
  chan<steady_time> channel_;
};

void sleep_until_steady(steady_time deadline) {
  if (deadline <= std::chrono::steady_clock::now()) return;
  sleep_until_ahead(deadline);
}

namespace {

// sleep_record: a sleeping fiber's timer, on its stack. A sleep has no
// waker but its timer, and the timer is armed only after the fiber has
// switched out (arm_sleep, its after-switch step), so firing can never
// overtake the switch: the fire readies the fiber directly, with none of
// the waiter's park protocol (park.hpp) that a primitive's wakers need.
// Nobody cancels a sleep, and fire_sleep's last touch of the record is
// reading the sleeper, so the entry frees itself (timer_heap.hpp): the loop
// leaves it alone once fire_sleep runs, and the woken fiber returns without
// waiting on it (no await_fired, and no second load of a line that went cold
// again while the round's other sleepers fired and ran).
// One cache line: firing it touches the entry and the sleeper, a line gone
// cold while the fiber slept.
struct alignas(64) sleep_record {
  timer_entry entry;  // first member: fire() gets &entry
  fiber* sleeper;
};
static_assert(sizeof(sleep_record) == 64);

void fire_sleep(timer_entry* e) noexcept {
  fiber* sleeper = reinterpret_cast<sleep_record*>(e)->sleeper;
  scheduler::get().ready(sleeper, true);  // the sleeper may return, and free e, at once
}

// arm_sleep: on the worker, once the sleeper has switched out. A sleep
// until the end of time arms nothing.
void arm_sleep(worker& w, fiber*, void* record) {
  auto* sleep = static_cast<sleep_record*>(record);
  if (sleep->entry.deadline_ns != INT64_MAX) event_loop::add_timer_after_switch(w, &sleep->entry);
}

}  // namespace

// sleep_until_ahead: sleep_until for a deadline just computed to be ahead
// (sleep_for's now + d): no second clock read to check it (a timer already
// due fires at the loop's next poll).
void sleep_until_ahead(steady_time deadline) {
  fiber* self = scheduler::running_fiber();
  if (self == nullptr) {
    std::this_thread::sleep_until(deadline);
    return;
  }
  sleep_record sleep;
  sleep.entry.deadline_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
  sleep.entry.fire = fire_sleep;
  sleep.entry.frees_itself = true;
  sleep.sleeper = self;
  scheduler::get().park(arm_sleep, &sleep);
}

}  // namespace detail

timer::timer(std::chrono::nanoseconds d)
    : state_(new detail::timer_state(detail::timer_state::kind::send, d)) {
  state_->arm(d);
}

timer::timer(std::chrono::nanoseconds d, std::function<void()> f)
    : state_(new detail::timer_state(detail::timer_state::kind::call, d, std::move(f))) {
  state_->arm(d);
}

timer::timer(timer&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}

timer& timer::operator=(timer&& other) noexcept {
  if (this != &other) {
    stop();
    delete state_;
    state_ = std::exchange(other.state_, nullptr);
  }
  return *this;
}

timer::~timer() {
  stop();
  delete state_;
}

chan<steady_time> timer::channel() const noexcept {
  return state_ ? state_->channel() : chan<steady_time>();
}

bool timer::stop() noexcept { return state_ != nullptr && state_->cancel(); }

bool timer::reset(std::chrono::nanoseconds d) {
  if (state_ == nullptr) throw usage_error("spindle: reset of a moved-from timer");
  const bool was_pending = state_->cancel();
  state_->arm(d);
  return was_pending;
}

ticker::ticker(std::chrono::nanoseconds period) : state_(nullptr) {
  if (period.count() <= 0) throw usage_error("spindle: ticker period must be positive");
  state_ = new detail::timer_state(detail::timer_state::kind::tick, period);
  state_->arm(period);
}

ticker::ticker(ticker&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}

ticker& ticker::operator=(ticker&& other) noexcept {
  if (this != &other) {
    stop();
    delete state_;
    state_ = std::exchange(other.state_, nullptr);
  }
  return *this;
}

ticker::~ticker() {
  stop();
  delete state_;
}

chan<steady_time> ticker::channel() const noexcept {
  return state_ ? state_->channel() : chan<steady_time>();
}

void ticker::stop() noexcept {
  if (state_ != nullptr) state_->cancel();
}

void ticker::reset(std::chrono::nanoseconds period) {
  if (period.count() <= 0) throw usage_error("spindle: ticker period must be positive");
  if (state_ == nullptr) throw usage_error("spindle: reset of a moved-from ticker");
  state_->cancel();
  state_->set_period(period);
  state_->arm(period);
}

chan<steady_time> after(std::chrono::nanoseconds d) {
  auto* state = new detail::timer_state(detail::timer_state::kind::send_once_and_free, d);
  chan<steady_time> c = state->channel();
  state->arm(d);
  return c;
}

}  // namespace spindle
