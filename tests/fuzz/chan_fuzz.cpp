// tests/fuzz/chan_fuzz.cpp: random channel scripts checked against a model.
//
// The input bytes decode into a script (decode_* below; a missing byte reads
// as 0, so every input is a valid script):
//   - 1 to 3 channels: unbuffered, buffered (capacity 1, 2, 3 or 8), or nil;
//   - phase A, sequential: one party (a fiber, or the calling plain thread)
//     runs up to 32 operations: try_send/try_recv, timed and blocking
//     send/recv, close, a select with a default case, a select with a
//     timeout, a blocking select. Alone, every operation's outcome is
//     determined, so each is compared EXACTLY with seq_model: the value
//     received, true/false, which select case fired (any of the ready ones
//     may: select picks at random), which exception; and after every
//     operation each channel's size() and closed(). An operation the model
//     says would block forever is run with a timeout and must time out.
//   - phase B, concurrent: 1 to 4 fibers and maybe one plain thread, each
//     with up to 12 operations (the same kinds, blocking ones included, plus
//     yield), start together on the buffers phase A left behind. The outcome
//     of a race is not determined, so the model defines invariants instead:
//       1. conservation: every value received was sent successfully, no value
//          is received twice, and every value sent successfully was received
//          or is still buffered at the end;
//       2. FIFO: each receiver gets each sender's values on a channel in the
//          order they were sent, and no value left in a buffer is older than
//          one received from the same sender on that channel;
//       3. nothing is received from a channel after anyone saw it closed and
//          drained, and no send succeeds on a channel seen closed before it;
//       4. a send that throws throws "send on closed channel" and the channel
//          is closed; a close that throws throws "close of closed channel";
//          every channel is closed successfully exactly once (the script's
//          closes plus the final ones below);
//       5. a select runs exactly one handler, the one of the case it returns;
//          a receive case that fires empty found its channel closed;
//       6. no deadlock and no lost wake-up: once the parties stop making
//          progress, every channel is closed, which must wake every blocked
//          party (a blocked receive returns empty, a blocked send throws)
//          within 10 s. Every script terminates then, so a party still
//          blocked is a bug. Timed operations bound the rest.
//     The monitor's safety net must never have fired (tests/main.cpp's rule).
// A violation prints what broke and aborts: libFuzzer keeps the input, and
// the replay main (replay_main.cpp) reproduces it.
//
// What this does not check: which of several racing parties wins, fairness,
// and timing (a timed operation may time out early only if the model allows).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <spindle/spindle.hpp>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

[[noreturn]] void violation(const char* format, ...) {
  std::va_list args;
  va_start(args, format);
  std::fputs("chan_fuzz: VIOLATION: ", stderr);
  std::vfprintf(stderr, format, args);
  std::fputc('\n', stderr);
  va_end(args);
  std::abort();
}

void expect(bool ok, const char* what) {
  if (!ok) violation("%s", what);
}

// byte_reader: the input, one byte at a time; 0 once it is used up.
class byte_reader {
 public:
  byte_reader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  unsigned below(unsigned bound) {
    if (size_ == 0) return 0;
    --size_;
    return *data_++ % bound;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
};

// Values are (party << 16) | sequence number: unique, and ordered per sender.
constexpr int value_of(int party, int seq) { return (party << 16) | seq; }
constexpr int party_of(int value) { return value >> 16; }
constexpr int seq_of(int value) { return value & 0xffff; }

constexpr int max_channels = 3;
constexpr std::size_t capacities[] = {0, 0, 1, 2, 3, 8, 0};

enum class op_kind {
  send,
  try_send,
  send_for,
  recv,
  try_recv,
  recv_for,
  close,
  select_default,  // recv a, recv b, send c, default
  select_timeout,  // recv a, send b, timeout
  select_block,    // recv a, recv b, send c
  yield,
  count
};

struct op {
  op_kind kind;
  int chan[3];
  bool enabled[3];
  bool timeout_enabled;
  std::chrono::microseconds timeout;
};

op decode_op(byte_reader& in, int nchan, unsigned kinds) {
  op o{};
  o.kind = static_cast<op_kind>(in.below(kinds));
  for (int i = 0; i < 3; ++i) o.chan[i] = static_cast<int>(in.below(nchan));
  const unsigned flags = in.below(256);
  for (int i = 0; i < 3; ++i) o.enabled[i] = (flags >> i & 1) == 0;  // mostly enabled
  o.timeout_enabled = (flags >> 3 & 3) != 0;
  static constexpr int timeouts_us[] = {0, 50, 300, 1000};
  o.timeout = std::chrono::microseconds(timeouts_us[flags >> 5 & 3]);
  return o;
}

// A script: channels, phase A (sequential), phase B (one op list per party).
struct script {
  std::vector<int> capacity;  // -1: nil
  bool phase_a_on_thread = false;
  std::vector<op> phase_a;
  std::vector<std::vector<op>> parties;
  bool last_party_is_thread = false;
};

script decode(byte_reader& in) {
  script s;
  const int nchan = 1 + static_cast<int>(in.below(max_channels));
  for (int i = 0; i < nchan; ++i) {
    const unsigned k = in.below(8);
    s.capacity.push_back(k == 7 ? -1 : static_cast<int>(capacities[k]));
  }
  s.phase_a_on_thread = in.below(4) == 0;
  const unsigned na = in.below(33);
  for (unsigned i = 0; i < na; ++i) {
    s.phase_a.push_back(decode_op(in, nchan, static_cast<unsigned>(op_kind::yield)));
  }
  const unsigned nparties = 1 + in.below(4);
  s.last_party_is_thread = in.below(4) == 0;
  s.parties.resize(nparties + (s.last_party_is_thread ? 1 : 0));
  for (auto& ops : s.parties) {
    const unsigned n = in.below(13);
    for (unsigned i = 0; i < n; ++i) {
      ops.push_back(decode_op(in, nchan, static_cast<unsigned>(op_kind::count)));
    }
  }
  return s;
}

using channels = std::vector<spindle::chan<int>>;

// throws_with: runs f; true if it threw usage_error whose what() contains
// `text`; false if it returned. Any other exception is a violation.
template <class F>
bool throws_with(F&& f, const char* text) {
  try {
    f();
    return false;
  } catch (const spindle::usage_error& e) {
    if (std::strstr(e.what(), text) == nullptr) {
      violation("usage_error \"%s\", expected \"%s\"", e.what(), text);
    }
    return true;
  }
}

// ---------------------------------------------------------------- phase A

// seq_model: Go's channel semantics for one party acting alone.
struct model_chan {
  bool nil = false;
  std::size_t capacity = 0;
  std::deque<int> buffer;
  bool closed = false;

  bool recv_ready() const { return !nil && (!buffer.empty() || closed); }
  bool send_ready() const { return !nil && (closed || buffer.size() < capacity); }
};

class seq_model_run {
 public:
  seq_model_run(const script& s, channels& ch) : ch_(ch) {
    for (int cap : s.capacity) {
      model_chan m;
      m.nil = cap < 0;
      m.capacity = cap < 0 ? 0 : static_cast<std::size_t>(cap);
      model_.push_back(m);
    }
  }

  void run(const std::vector<op>& ops) {
    for (const op& o : ops) {
      step(o);
      compare_states();
    }
  }
  const std::vector<model_chan>& model() const { return model_; }

 private:
  void step(const op& o) {
    switch (o.kind) {
      case op_kind::send:
      case op_kind::try_send:
      case op_kind::send_for:
        return send(o);
      case op_kind::recv:
      case op_kind::try_recv:
      case op_kind::recv_for:
        return recv(o);
      case op_kind::close:
        return close(o.chan[0]);
      case op_kind::select_default:
        return select_default(o);
      case op_kind::select_timeout:
      case op_kind::select_block:
        return select_timeout(o);
      default:
        return;
    }
  }

  void send(const op& o) {
    model_chan& m = model_[o.chan[0]];
    spindle::chan<int>& c = ch_[o.chan[0]];
    const int v = value_of(0, seq_++);
    if (m.nil) {
      expect(throws_with([&] { c.try_send(v); }, "nil channel"), "try_send on nil: no throw");
      return;
    }
    bool sent = false;
    auto attempt = [&] {
      if (o.kind == op_kind::try_send) {
        sent = c.try_send(v);
      } else if (o.kind == op_kind::send && m.send_ready()) {
        c.send(v);
        sent = true;
      } else {
        sent = c.send_for(int(v), o.timeout);
      }
    };
    const bool threw = throws_with(attempt, "send on closed channel");
    expect(threw == m.closed, "send: threw iff the channel is closed");
    if (threw) return;
    expect(sent == m.send_ready(), "send: completed iff the model has room");
    if (sent) m.buffer.push_back(v);
  }

  void recv(const op& o) {
    model_chan& m = model_[o.chan[0]];
    spindle::chan<int>& c = ch_[o.chan[0]];
    if (m.nil) {
      expect(throws_with([&] { (void)c.try_recv(); }, "nil channel"), "try_recv on nil: no throw");
      return;
    }
    std::optional<int> got;
    if (o.kind == op_kind::try_recv) {
      got = c.try_recv();
    } else if (o.kind == op_kind::recv && m.recv_ready()) {
      got = c.recv();
    } else {
      got = c.recv_for(o.timeout);
    }
    expect_received(m, got);
  }

  // expect_received: a receive (or receive case) returned `got`.
  static void expect_received(model_chan& m, std::optional<int> got) {
    if (m.buffer.empty()) {
      expect(!got.has_value(), "recv: got a value from an empty channel");
      return;
    }
    if (!got || *got != m.buffer.front()) {
      violation("recv: got %d, the model's oldest buffered value is %d", got ? *got : -1,
                m.buffer.front());
    }
    m.buffer.pop_front();
  }

  void close(int index) {
    model_chan& m = model_[index];
    spindle::chan<int>& c = ch_[index];
    if (m.nil) {
      expect(throws_with([&] { c.close(); }, "nil channel"), "close of nil: no throw");
      return;
    }
    const bool threw = throws_with([&] { c.close(); }, "close of closed channel");
    expect(threw == m.closed, "close: threw iff already closed");
    m.closed = true;
  }

  // ready_case: whether select case i of `o` (0, 1: receive; 2: send) can fire.
  bool ready_case(const op& o, int i, bool is_send) const {
    const model_chan& m = model_[o.chan[i]];
    return o.enabled[i] && (is_send ? m.send_ready() : m.recv_ready());
  }

  // select_fired: select returned case `index` with handler counts `ran`;
  // `received` is what the receive case's handler got.
  void select_fired(const op& o, int index, const bool is_send[3], const int ran[4],
                    std::optional<int> received, int value, int ncases) {
    int handlers = 0;
    for (int i = 0; i < ncases; ++i) handlers += ran[i];
    expect(handlers == 1 && ran[index] == 1, "select: not exactly one handler, the returned one");
    if (index >= 3 || (index == 2 && ncases == 3)) return;  // default or timeout
    expect(ready_case(o, index, is_send[index]), "select: fired a case that was not ready");
    model_chan& m = model_[o.chan[index]];
    if (is_send[index]) {
      expect(!m.closed, "select: a send case on a closed channel fired without throwing");
      m.buffer.push_back(value);
    } else {
      expect_received(m, received);
    }
  }

  bool any_ready(const op& o, const bool is_send[3], int n) const {
    for (int i = 0; i < n; ++i) {
      if (ready_case(o, i, is_send[i])) return true;
    }
    return false;
  }

  // check_send_on_closed_throw: a select threw "send on closed channel".
  void check_send_on_closed_throw(const op& o, const bool is_send[3], int n) const {
    for (int i = 0; i < n; ++i) {
      if (is_send[i] && o.enabled[i] && !model_[o.chan[i]].nil && model_[o.chan[i]].closed) return;
    }
    violation("select threw send on closed channel without an enabled send case on one");
  }

  void select_default(const op& o) {
    static constexpr bool is_send[3] = {false, false, true};
    const int v = value_of(0, seq_++);
    int ran[4] = {};
    std::optional<int> received;
    std::size_t index = 0;
    auto on_recv = [&](int i) {
      return [&ran, &received, i](std::optional<int> got) {
        ++ran[i];
        received = got;
      };
    };
    auto run = [&] {
      index =
          spindle::select(spindle::recv(ch_[o.chan[0]], on_recv(0)).when(o.enabled[0]),
                          spindle::recv(ch_[o.chan[1]], on_recv(1)).when(o.enabled[1]),
                          spindle::send(ch_[o.chan[2]], v, [&] { ++ran[2]; }).when(o.enabled[2]),
                          spindle::default_case([&] { ++ran[3]; }));
    };
    if (throws_with(run, "send on closed channel"))
      return check_send_on_closed_throw(o, is_send, 3);
    expect((index == 3) == !any_ready(o, is_send, 3), "select: default fired iff nothing ready");
    select_fired(o, static_cast<int>(index), is_send, ran, received, v, 4);
  }

  // select_timeout: a select with a timeout; the timeout is forced on when
  // the model says the select would otherwise block forever.
  void select_timeout(const op& o) {
    static constexpr bool is_send[3] = {false, true, false};
    const int v = value_of(0, seq_++);
    bool active = false;
    for (int i = 0; i < 2; ++i) active |= o.enabled[i] && !model_[o.chan[i]].nil;
    const bool timeout_on = o.timeout_enabled || (active && !any_ready(o, is_send, 2));
    int ran[4] = {};
    std::optional<int> received;
    std::size_t index = 0;
    auto run = [&] {
      index =
          spindle::select(spindle::recv(ch_[o.chan[0]],
                                        [&](std::optional<int> got) {
                                          ++ran[0];
                                          received = got;
                                        })
                              .when(o.enabled[0]),
                          spindle::send(ch_[o.chan[1]], v, [&] { ++ran[1]; }).when(o.enabled[1]),
                          spindle::timeout(o.timeout, [&] { ++ran[2]; }).when(timeout_on));
    };
    if (!active && !timeout_on) {
      expect(throws_with(run, "no enabled case"), "select with nothing enabled: no throw");
      return;
    }
    if (throws_with(run, "send on closed channel"))
      return check_send_on_closed_throw(o, is_send, 2);
    expect((index == 2) == !any_ready(o, is_send, 2), "select: timeout fired iff nothing ready");
    select_fired(o, static_cast<int>(index), is_send, ran, received, v, 3);
  }

  void compare_states() const {
    for (std::size_t i = 0; i < model_.size(); ++i) {
      if (model_[i].nil) continue;
      if (ch_[i].size() != model_[i].buffer.size() || ch_[i].closed() != model_[i].closed) {
        violation("channel %zu: size %zu closed %d, model: size %zu closed %d", i, ch_[i].size(),
                  ch_[i].closed(), model_[i].buffer.size(), model_[i].closed);
      }
    }
  }

  channels& ch_;
  std::vector<model_chan> model_;
  int seq_ = 0;
};

// ---------------------------------------------------------------- phase B

// shared_state: what the parties of phase B record, checked at the end.
struct shared_state {
  explicit shared_state(std::size_t nchan) : drained(nchan), closes(nchan) {}
  std::vector<std::atomic<bool>> drained;  // someone saw the channel closed and empty
  std::vector<std::atomic<int>> closes;    // successful close() calls
  std::atomic<std::uint64_t> progress{0};  // operations finished, all parties
};

// party_log: one party's record. sent[c]: values it sent successfully on
// channel c; received[c]: values it received from c, in order.
struct party_log {
  explicit party_log(std::size_t nchan) : sent(nchan), received(nchan) {}
  std::vector<std::vector<int>> sent;
  std::vector<std::vector<int>> received;
};

class party_run {
 public:
  party_run(int id, channels& ch, shared_state& shared, party_log& log)
      : id_(id), ch_(ch), shared_(shared), log_(log) {}

  void run(const std::vector<op>& ops) {
    for (const op& o : ops) {
      step(o);
      shared_.progress.fetch_add(1, std::memory_order_relaxed);
    }
  }

 private:
  void step(const op& o) {
    switch (o.kind) {
      case op_kind::send:
      case op_kind::try_send:
      case op_kind::send_for:
        return send(o);
      case op_kind::recv:
      case op_kind::try_recv:
      case op_kind::recv_for:
        return recv(o);
      case op_kind::close:
        return close(o.chan[0]);
      case op_kind::select_default:
      case op_kind::select_timeout:
      case op_kind::select_block:
        return select(o);
      default:
        spindle::yield();
    }
  }

  void send(const op& o) {
    const int index = o.chan[0];
    spindle::chan<int>& c = ch_[index];
    const int v = value_of(id_, seq_++);
    if (!c) {
      expect(throws_with([&] { c.send(v); }, "nil channel"), "send on nil: no throw");
      return;
    }
    const bool closed_before = c.closed();
    bool sent = false;
    auto attempt = [&] {
      if (o.kind == op_kind::send) {
        c.send(v);
        sent = true;
      } else if (o.kind == op_kind::try_send) {
        sent = c.try_send(v);
      } else {
        sent = c.send_for(int(v), o.timeout);
      }
    };
    if (throws_with(attempt, "send on closed channel")) {
      expect(c.closed(), "send threw on an open channel");
      return;
    }
    if (sent) {
      expect(!closed_before, "send succeeded on a channel closed before it started");
      log_.sent[index].push_back(v);
    }
  }

  void recv(const op& o) {
    const int index = o.chan[0];
    spindle::chan<int>& c = ch_[index];
    if (!c) {
      expect(throws_with([&] { (void)c.recv(); }, "nil channel"), "recv on nil: no throw");
      return;
    }
    const bool drained_before = shared_.drained[index].load(std::memory_order_acquire);
    const bool closed_before = c.closed();
    std::optional<int> got;
    if (o.kind == op_kind::recv) {
      got = c.recv();
    } else if (o.kind == op_kind::try_recv) {
      got = c.try_recv();
    } else {
      got = c.recv_for(o.timeout);
    }
    // An empty result proves closed-and-drained for recv, and for a
    // non-blocking receive that began after the channel was closed.
    const bool proves_drained =
        o.kind == op_kind::recv || (o.kind != op_kind::recv_for && closed_before);
    received(index, got, drained_before, proves_drained);
  }

  void received(int index, std::optional<int> got, bool drained_before, bool proves_drained) {
    if (got) {
      expect(!drained_before, "received a value after the channel was seen closed and drained");
      log_.received[index].push_back(*got);
      return;
    }
    if (proves_drained) {
      expect(ch_[index].closed(), "a blocking receive returned empty on an open channel");
      shared_.drained[index].store(true, std::memory_order_release);
    }
  }

  void close(int index) {
    spindle::chan<int>& c = ch_[index];
    if (!c) {
      expect(throws_with([&] { c.close(); }, "nil channel"), "close of nil: no throw");
      return;
    }
    if (!throws_with([&] { c.close(); }, "close of closed channel")) {
      shared_.closes[index].fetch_add(1, std::memory_order_relaxed);
    }
  }

  // select: one of the three select shapes; for select_block, with the
  // timeout and default cases switched off.
  void select(const op& o) {
    const bool with_default = o.kind == op_kind::select_default;
    const bool with_timeout = o.kind == op_kind::select_timeout && o.timeout_enabled;
    const int v = value_of(id_, seq_++);
    bool drained_before[3];
    for (int i = 0; i < 2; ++i) {
      drained_before[i] = shared_.drained[o.chan[i]].load(std::memory_order_acquire);
    }
    int ran[5] = {};
    std::optional<int> got[2];
    std::size_t index = 0;
    auto on_recv = [&](int i) {
      return [&ran, &got, i](std::optional<int> value) {
        ++ran[i];
        got[i] = value;
      };
    };
    auto run = [&] {
      index =
          spindle::select(spindle::recv(ch_[o.chan[0]], on_recv(0)).when(o.enabled[0]),
                          spindle::recv(ch_[o.chan[1]], on_recv(1)).when(o.enabled[1]),
                          spindle::send(ch_[o.chan[2]], v, [&] { ++ran[2]; }).when(o.enabled[2]),
                          spindle::default_case([&] { ++ran[3]; }).when(with_default),
                          spindle::timeout(o.timeout, [&] { ++ran[4]; }).when(with_timeout));
    };
    bool any_enabled = false;
    for (int i = 0; i < 3; ++i) any_enabled |= o.enabled[i] && ch_[o.chan[i]];
    if (!any_enabled && !with_default && !with_timeout) {
      expect(throws_with(run, "no enabled case"), "select with nothing enabled: no throw");
      return;
    }
    if (throws_with(run, "send on closed channel")) {
      expect(o.enabled[2] && ch_[o.chan[2]] && ch_[o.chan[2]].closed(),
             "select threw send on closed channel without a closed send case");
      return;
    }
    expect(ran[0] + ran[1] + ran[2] + ran[3] + ran[4] == 1 && index < 5 && ran[index] == 1,
           "select: not exactly one handler, the returned one");
    if (index == 2) log_.sent[o.chan[2]].push_back(v);
    if (index < 2) received(o.chan[index], got[index], drained_before[index], true);
  }

  int id_;
  channels& ch_;
  shared_state& shared_;
  party_log& log_;
  int seq_ = 0;
};

// wait_then_close_all: waits while the parties make progress; once they
// stop (all done, or every one blocked), closes every channel, which must
// let every party finish.
void wait_then_close_all(channels& ch, shared_state& shared, spindle::wait_group& done) {
  std::uint64_t seen = ~std::uint64_t{0};
  while (!done.wait_for(2ms)) {
    const std::uint64_t now = shared.progress.load(std::memory_order_relaxed);
    if (now == seen) break;
    seen = now;
  }
  for (std::size_t i = 0; i < ch.size(); ++i) {
    if (ch[i] && !throws_with([&] { ch[i].close(); }, "close of closed channel")) {
      shared.closes[i].fetch_add(1, std::memory_order_relaxed);
    }
  }
  expect(done.wait_for(10s), "a party is still blocked 10 s after every channel was closed");
}

// check_conservation: invariants 1, 2 and 4 over the logs and what is left
// buffered in each (closed) channel. `initial` is what phase A left there.
void check_conservation(channels& ch, const std::vector<model_chan>& initial,
                        const std::vector<party_log>& logs, shared_state& shared) {
  for (std::size_t c = 0; c < ch.size(); ++c) {
    if (!ch[c]) continue;
    if (shared.closes[c].load() != 1)
      violation("channel %zu closed %d times", c, shared.closes[c].load());
    std::map<int, int> sent;  // value -> times received
    for (int v : initial[c].buffer) sent[v] = 0;
    for (const party_log& log : logs) {
      for (int v : log.sent[c]) sent[v] = 0;
    }
    std::map<int, int> newest_received;  // sender -> highest sequence received
    for (const party_log& log : logs) {
      std::map<int, int> last;  // per receiver: sender -> last sequence
      for (int v : log.received[c]) {
        auto it = sent.find(v);
        if (it == sent.end()) violation("channel %zu: received %#x, never sent successfully", c, v);
        if (++it->second > 1) violation("channel %zu: value %#x received twice", c, v);
        auto [at, fresh] = last.try_emplace(party_of(v), seq_of(v));
        if (!fresh && at->second > seq_of(v)) {
          violation("channel %zu: a receiver got sender %d's #%d after #%d", c, party_of(v),
                    seq_of(v), at->second);
        }
        at->second = seq_of(v);
        int& newest = newest_received.try_emplace(party_of(v), -1).first->second;
        newest = std::max(newest, seq_of(v));
      }
    }
    while (std::optional<int> v = ch[c].try_recv()) {
      auto it = sent.find(*v);
      if (it == sent.end() || it->second++ != 0) {
        violation("channel %zu: buffered value %#x never sent or already received", c, *v);
      }
      auto newest = newest_received.find(party_of(*v));
      if (newest != newest_received.end() && newest->second > seq_of(*v)) {
        violation("channel %zu: sender %d's #%d still buffered after #%d was received", c,
                  party_of(*v), seq_of(*v), newest->second);
      }
    }
    for (auto [v, times] : sent) {
      if (times != 1) violation("channel %zu: value %#x sent but lost", c, v);
    }
  }
}

void run_phase_b(const script& s, channels& ch, const std::vector<model_chan>& initial) {
  shared_state shared(ch.size());
  std::vector<party_log> logs(s.parties.size(), party_log(ch.size()));
  for (std::size_t c = 0; c < ch.size(); ++c) shared.closes[c] = initial[c].closed ? 1 : 0;
  spindle::wait_group done;
  done.add(static_cast<std::ptrdiff_t>(s.parties.size()));
  std::vector<spindle::handle<void>> fibers;
  std::thread thread;
  for (std::size_t p = 0; p < s.parties.size(); ++p) {
    auto body = [&, p] {
      party_run(static_cast<int>(p) + 1, ch, shared, logs[p]).run(s.parties[p]);
      done.done();
    };
    if (s.last_party_is_thread && p + 1 == s.parties.size()) {
      thread = std::thread(body);
    } else {
      fibers.push_back(spindle::go(body));
    }
  }
  wait_then_close_all(ch, shared, done);
  for (auto& f : fibers) f.join();
  if (thread.joinable()) thread.join();
  check_conservation(ch, initial, logs, shared);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  byte_reader in(data, size);
  const script s = decode(in);
  channels ch;
  for (int cap : s.capacity) {
    ch.push_back(cap < 0 ? spindle::chan<int>()
                         : spindle::chan<int>(static_cast<std::size_t>(cap)));
  }
  std::vector<model_chan> after_a;
  auto phase_a = [&] {
    seq_model_run model(s, ch);
    model.run(s.phase_a);
    after_a = model.model();
  };
  if (s.phase_a_on_thread) {
    phase_a();
  } else {
    spindle::go(phase_a).join();
  }
  run_phase_b(s, ch, after_a);
  const std::uint64_t net = spindle::runtime_stats().safety_net_wakes;
  if (net != 0)
    violation("the monitor's safety net fired %llu times (a lost wake-up)",
              (unsigned long long)net);
  return 0;
}
