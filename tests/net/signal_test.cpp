// tests/net/signal_test.cpp: signal_notifier.
//
// The signals are raised with raise(), i.e. sent to the raising thread. With
// kill(getpid(), ...) the kernel may pick another thread, and under
// ThreadSanitizer a thread asleep in a raw futex system call (the runtime's
// idle workers) never runs the deferred handler, so the test would hang
// there; the uninstrumented build handles either way.
#include <doctest/doctest.h>
#include <signal.h>

#include <spindle/spindle.hpp>

TEST_CASE("a raised signal is received on the channel, by a fiber") {
  spindle::go([] {
    spindle::signal_notifier n({SIGUSR1, SIGUSR2});
    REQUIRE(::raise(SIGUSR1) == 0);
    CHECK(n.channel().recv() == SIGUSR1);
    REQUIRE(::raise(SIGUSR2) == 0);
    CHECK(n.channel().recv() == SIGUSR2);
    n.stop();
    CHECK_FALSE(n.channel().recv().has_value());  // closed by stop
  }).join();
}

TEST_CASE("two notifiers of one signal both receive it; a plain thread can wait") {
  spindle::signal_notifier a({SIGUSR1});
  spindle::signal_notifier b({SIGUSR1});
  REQUIRE(::raise(SIGUSR1) == 0);
  CHECK(a.channel().recv() == SIGUSR1);
  CHECK(b.channel().recv() == SIGUSR1);
}

TEST_CASE("an uncatchable signal is refused") {
  CHECK_THROWS_AS(spindle::signal_notifier({SIGKILL}), std::system_error);
}
