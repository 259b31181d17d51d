// samples/echo_server.cpp: a TCP echo server, one fiber per connection.
//
//   echo_server [HOST:PORT]      (default 127.0.0.1:0, a free port)
//
// Prints "listening on HOST:PORT" as its first line, echoes whatever each
// client sends until the client closes, and exits with status 0 on SIGINT or
// SIGTERM. This is the server of the tcp_echo benchmark (bench/README.md).
#include <csignal>
#include <cstdio>
#include <spindle/spindle.hpp>
#include <system_error>

using namespace std::chrono_literals;

namespace {

// echo: serves one connection until the client closes it or it fails.
void echo(spindle::tcp_stream conn) {
  char buf[16 * 1024];
  try {
    while (std::size_t n = conn.read(buf, sizeof buf)) conn.write_all(buf, n);
  } catch (const spindle::net_error&) {
    // A reset or a closed connection ends this client's session only.
  }
}

// serve: accepts until the listener is closed.
void serve(spindle::tcp_listener& listener) {
  for (;;) {
    try {
      spindle::go(echo, listener.accept());
    } catch (const std::system_error& e) {  // net_error from accept, resource_error from go
      if (!listener.is_open()) return;
      // Out of descriptors ("accept ...: Too many open files") or of memory
      // for a fiber stack: this connection is dropped; back off a little and
      // keep serving the others, as Go's http.Server does.
      std::fprintf(stderr, "echo_server: %s\n", e.what());
      spindle::sleep_for(5ms);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const char* address = argc > 1 ? argv[1] : "127.0.0.1:0";
  spindle::signal_notifier stop({SIGINT, SIGTERM});
  spindle::tcp_listener listener;
  try {
    listener = spindle::listen_tcp(address);
  } catch (const spindle::net_error& e) {
    std::fprintf(stderr, "echo_server: %s\n", e.what());
    return 1;
  }
  std::printf("listening on %s\n", listener.local_address().to_string().c_str());
  std::fflush(stdout);  // standard output may be a pipe: the reader waits for this line

  auto server = spindle::go([&listener] { serve(listener); });
  stop.channel().recv();
  listener.close();
  server.join();
  return 0;
}
