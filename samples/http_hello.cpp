// samples/http_hello.cpp: a minimal keep-alive HTTP/1.1 responder, one fiber
// per connection. Not an HTTP library: it answers every request with
// "Hello, world!", enough for wrk or ab to load it.
//
//   http_hello [HOST:PORT]       (default 127.0.0.1:0)
//   wrk -c 100 -d 10s http://127.0.0.1:PORT/      ab -k -n 100000 -c 100 ...
//
// Prints "listening on HOST:PORT" first; exits with status 0 on SIGINT/SIGTERM.
#include <cctype>
#include <csignal>
#include <cstdio>
#include <spindle/spindle.hpp>
#include <string>
#include <string_view>

using namespace std::chrono_literals;

namespace {

constexpr std::string_view body = "Hello, world!\n";
constexpr std::size_t max_header_bytes = 16 * 1024;

// has_connection: whether the header block has "Connection: <token>"
// (case-insensitive, good enough for wrk, ab and curl).
bool has_connection(std::string_view headers, std::string_view token) {
  std::string lower(headers);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower.find("\r\nconnection: " + std::string(token)) != std::string::npos;
}

// respond: answers one request (its header block); returns whether the
// connection stays open afterwards.
bool respond(spindle::tcp_stream& conn, std::string_view request) {
  const bool http10 = request.substr(0, request.find("\r\n")).ends_with("HTTP/1.0");
  const bool keep_alive =
      http10 ? has_connection(request, "keep-alive") : !has_connection(request, "close");
  std::string response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                         std::to_string(body.size()) + "\r\n";
  response += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  response += body;
  conn.write_all(response);
  return keep_alive;
}

// serve_client: reads requests (possibly pipelined) and answers each; the
// request bodies, if any, are not read (GET and HEAD have none).
void serve_client(spindle::tcp_stream conn) {
  std::string pending;
  char buf[8192];
  try {
    for (;;) {
      const std::size_t end = pending.find("\r\n\r\n");
      if (end != std::string::npos) {
        const bool keep = respond(conn, std::string_view(pending).substr(0, end + 2));
        pending.erase(0, end + 4);
        if (!keep) return;
        continue;
      }
      if (pending.size() > max_header_bytes) return;
      const std::size_t n = conn.read(buf, sizeof buf, 60s);
      if (n == 0) return;
      pending.append(buf, n);
    }
  } catch (const spindle::net_error&) {
    // Reset, idle for a minute, or closed: drop this connection.
  }
}

void serve(spindle::tcp_listener& listener) {
  for (;;) {
    try {
      spindle::go(serve_client, listener.accept());
    } catch (const spindle::net_error& e) {
      if (!listener.is_open()) return;
      std::fprintf(stderr, "http_hello: %s\n", e.what());
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
    std::fprintf(stderr, "http_hello: %s\n", e.what());
    return 1;
  }
  std::printf("listening on %s\n", listener.local_address().to_string().c_str());
  std::fflush(stdout);

  auto server = spindle::go([&listener] { serve(listener); });
  stop.channel().recv();
  listener.close();
  server.join();
  return 0;
}
