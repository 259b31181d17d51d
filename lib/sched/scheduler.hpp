// lib/sched/scheduler.hpp: the runtime object: processors, workers, the global
// queue, the idle set and the monitor. The protocol is described at the top of
// scheduler.cpp.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "io/event_loop.hpp"
#include "sched/core.hpp"
#include "sched/spinlock.hpp"
#include "spindle/go.hpp"
#include "spindle/runtime.hpp"

namespace spindle::detail {

class scheduler {
 public:
  // get: the runtime, started on first call with the configured options.
  static scheduler& get();
  // started: the runtime if it has started, else nullptr. Never starts it.
  static scheduler* started() noexcept;

  explicit scheduler(const options& opts);

  // spawn: creates a fiber for t (taking over one reference) and makes it runnable.
  // `site` is where go() was called, for diagnostics.
  void spawn(task_base* t, const spawn_options& opts, const void* site);

  // ready: makes parked fiber f runnable. On a worker thread it goes to that
  // worker's processor (into runnext when `next`, so it runs soon, near the
  // data its waker just touched); elsewhere to the global queue.
  void ready(fiber* f, bool next = true) noexcept;

  // set_ready_batch: from now on, fibers this thread readies collect in
  // `batch` (nullptr: stop collecting). A worker polling its loop uses this.
  static void set_ready_batch(std::vector<fiber*>* batch) noexcept;

  // park: called by the running fiber. Switches it out, then runs
  // action(worker, fiber, arg) on the worker; the action must arrange for
  // ready() to be called later (typically by releasing a lock under which
  // the fiber registered itself as a waiter).
  void park(after_switch_fn action, void* arg) noexcept;

  // yield_fiber: puts the running fiber at the back of its processor's queue.
  void yield_fiber() noexcept;

  // running_fiber: the fiber running on this thread, or nullptr.
  static fiber* running_fiber() noexcept;

  // has_spare_cpu: the process has more than one CPU and fewer processors
  // run fibers than it has CPUs, so a plain thread may spin briefly without
  // taking a CPU from a worker.
  bool has_spare_cpu() const noexcept {
    const int busy =
        active_.load(std::memory_order_relaxed) - nidle_.load(std::memory_order_relaxed);
    return cpus_ > 1 && busy < cpus_;
  }

  const options& config() const noexcept { return options_; }
  std::size_t procs() const noexcept { return processors_.size(); }
  // loop_of: processor i's event loop. current_loop: the caller's processor's
  // loop, or processor 0's for a thread without a processor.
  event_loop& loop_of(std::size_t i) const noexcept { return *processors_[i]->loop; }
  event_loop& current_loop() const noexcept;
  stats snapshot() const noexcept;

  // Called from fiber_exited.
  void fiber_finished(worker& w, fiber* f) noexcept;

  // direct_successor / settle_direct_switch: switch_out's fiber-to-fiber path.
  fiber* direct_successor(worker& w) noexcept;
  void settle_direct_switch(worker& w, fiber& out, fiber& next) noexcept;

  // blocking_begin / blocking_end: spindle::blocking() (handoff.cpp).
  void blocking_begin() noexcept;
  void blocking_end() noexcept;
  // check_preempt: this_fiber::check_preempt() (handoff.cpp).
  bool check_preempt() noexcept;

 private:
  void start_workers();
  void worker_loop(worker& w);
  fiber* find_runnable(worker& w);
  fiber* local_work(processor& p) noexcept;
  fiber* fair_turn(processor& p) noexcept;
  fiber* take_runnext(processor& p) noexcept;
  fiber* start_slice(processor& p, fiber* f) noexcept;
  fiber* take_global(processor& p) noexcept;
  fiber* drain_inbox(processor& p) noexcept;
  fiber* wait_for_work(worker& w);
  fiber* spin_for_work(worker& w);
  fiber* poll_loop(processor& p);
  fiber* take_readied(processor& p) noexcept;
  fiber* sleep_in_loop(worker& w, processor& p);
  void rest_while_inactive(worker& w, processor& p);
  void evacuate(processor& p) noexcept;
  void adapt_spin(worker& w, std::chrono::steady_clock::duration slept) noexcept;
  void execute(worker& w, fiber* f) noexcept;
  void begin_run(worker& w, processor& p, fiber& f) noexcept;
  void after_run(worker& w, fiber& out) noexcept;
  static void prefetch_next(processor& p) noexcept;
  static void publish_resume_sp(fiber& f) noexcept;

  void put_local(processor& p, fiber* f, bool next) noexcept;
  void push_ring_or_overflow(processor& p, fiber* f) noexcept;
  void push_global(fiber* f) noexcept;
  void push_global_all(fiber* const* fibers, std::size_t n) noexcept;
  void after_global_push() noexcept;
  void overflow_to_global(processor& p, fiber* f) noexcept;
  fiber* run_batch_locally(processor& p, fiber_batch& batch) noexcept;

  // Parking and waking (see the protocol in scheduler.cpp).
  void wakep() noexcept;
  void wake_processor(processor& p, wake_reason why) noexcept;
  processor* claim_idle() noexcept;
  bool join_idle_set(processor& p) noexcept;
  bool leave_idle_set(processor& p) noexcept;
  void remove_from_idle_set_locked(processor& p) noexcept;
  void stop_searching(worker& w) noexcept;
  bool has_visible_work(processor& p) const noexcept;

  // The monitor thread (monitor.cpp).
  void monitor_loop();
  bool monitor_tick(std::int64_t now, std::int64_t& next_stall_check_ns);
  bool sleep_while_workers_tick(std::int64_t last_tick_ns, std::int64_t interval_ns);
  bool await_monitor_timer() noexcept;
  void tick_for_monitor(std::int64_t now);
  void arm_monitor_timer(std::int64_t at_ns) noexcept;
  void plan_lazy_tick(std::int64_t due_ns) noexcept;
  void fire_monitor_timer() noexcept;
  bool balance(std::int64_t now) noexcept;
  void safety_net() noexcept;
  void wake_monitor() noexcept;
  bool all_idle() const noexcept;
  bool retake_stuck_processors(std::int64_t now_ns, std::int64_t& next_check_ns);
  bool work_waiting(processor& p) const noexcept;

  // Compaction (monitor.cpp): processors [0, active_) run fibers; the others
  // rest (rest_while_inactive). Only the monitor changes active_.
  bool is_active(const processor& p) const noexcept {
    return p.index < active_.load(std::memory_order_relaxed);
  }
  bool adjust_active(std::int64_t now_ns);
  bool saturated() noexcept;
  void activate_next() noexcept;
  void deactivate_last() noexcept;
  void report_stall(processor& p, bool hog, std::int64_t stalled_ns);

  // Handoff and the worker pool (handoff.cpp).
  worker* add_worker(processor* p);
  void start_thread(worker& w);
  bool become_spare(worker& w);
  bool retire(worker& w);
  void lose_processor(worker& w) noexcept;
  bool hand_off(processor& p, std::uint64_t observed, bool hog);
  worker* take_spare() noexcept;
  worker* new_spare();
  bool may_create_thread() noexcept;
  void poke_monitor() noexcept;

  options options_;
  std::vector<std::unique_ptr<processor>> processors_;
  std::vector<std::unique_ptr<event_loop>> loops_;  // loops_[i] belongs to processors_[i]
  fiber_queue global_;

  std::mutex workers_mutex_;
  std::vector<std::unique_ptr<worker>> workers_;  // guarded by workers_mutex_; alive threads
  std::vector<worker*> spares_;                   // guarded by workers_mutex_; parked, LIFO
  std::uint32_t next_worker_id_ = 0;              // guarded by workers_mutex_
  std::atomic<int> hogs_running_{0};              // workers that lost their processor as hogs
  std::atomic<bool> stall_suspected_{false};      // some processor looked stuck at the last tick
  std::atomic<int> pushes_in_flight_{0};          // global pushes before their wake decision
  // The monitor's tick only (tick_mutex_):
  bool thread_limit_reported_ = false;
  bool thread_refusal_reported_ = false;  // pthread_create failed
  double thread_tokens_ = 0;              // the thread-creation rate limit
  std::int64_t tokens_refilled_ns_ = 0;

  spinlock idle_lock_;
  std::vector<processor*> idle_;  // guarded by idle_lock_; sorted, lowest index last
  std::atomic<int> nidle_{0};     // written under idle_lock_
  const int cpus_;                // available_cpus() at start
  std::atomic<int> nsearching_{0};
  std::atomic<int> active_{0};  // written under idle_lock_, by the monitor's tick only

  std::thread monitor_;
  std::atomic<std::uint32_t> monitor_word_{0};  // futex the monitor deep-sleeps on
  std::atomic<std::uint32_t> monitor_asleep_{0};
  // The lazy monitor (monitor.cpp): while monitor_lazy_, the monitor thread
  // sleeps on monitor_timer_fd_ and a worker that wakes up at or after
  // next_lazy_tick_ns_ runs the tick; tick_mutex_ serialises ticks.
  int monitor_timer_fd_ = -1;
  bool monitor_timer_lost_ = false;  // monitor thread only: the timerfd stopped working
  std::atomic<bool> monitor_lazy_{false};
  std::atomic<std::int64_t> next_lazy_tick_ns_{INT64_MAX};
  std::mutex tick_mutex_;

  std::atomic<std::uint64_t> next_fiber_id_{1};
  std::atomic<std::uint64_t> exited_{0}, balancer_moves_{0}, contention_holds_{0}, offloads_{0},
      sleeps_{0}, wakes_{0}, safety_net_wakes_{0}, compactions_{0}, handoffs_{0},
      blocked_handoffs_{0}, hog_handoffs_{0}, threads_alive_{0}, threads_peak_{0},
      threads_created_{0}, threads_retired_{0}, worker_ticks_{0}, monitor_ticks_{0};
};

}  // namespace spindle::detail
