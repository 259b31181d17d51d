// lib/io/address.cpp: endpoint, "host:port" parsing and name resolution.
//
// resolve() runs uv_getaddrinfo on libuv's thread pool through a
// resolve_request allocated on the heap, because a lookup cannot always be
// cancelled: if the deadline passes while getaddrinfo runs, the fiber is
// released at once (timeout_error) and the request, detached from it, frees
// itself when the lookup eventually returns.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "io/address.hpp"
#include "io/loop_op.hpp"

namespace spindle {

endpoint::endpoint() noexcept {
  std::memset(storage_, 0, sizeof storage_);
  reinterpret_cast<sockaddr_in*>(storage_)->sin_family = AF_INET;
}

endpoint::endpoint(const void* sockaddr_data, std::size_t size) {
  static_assert(sizeof(storage_) == sizeof(sockaddr_in6));
  std::memset(storage_, 0, sizeof storage_);
  const auto* sa = static_cast<const sockaddr*>(sockaddr_data);
  const bool ok = (sa->sa_family == AF_INET && size >= sizeof(sockaddr_in)) ||
                  (sa->sa_family == AF_INET6 && size >= sizeof(sockaddr_in6));
  if (!ok) {
    throw net_error(std::make_error_code(std::errc::address_family_not_supported),
                    "endpoint: not an IPv4 or IPv6 socket address");
  }
  std::memcpy(storage_, sockaddr_data,
              sa->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6));
}

endpoint endpoint::parse(std::string_view text) {
  detail::host_port hp = detail::split_host_port("parse", text);
  endpoint e;
  if (!detail::parse_ip(hp.host, hp.port, e)) {
    detail::throw_invalid_address("parse", text, "not a numeric IP address");
  }
  return e;
}

endpoint endpoint::from_ip(std::string_view ip, std::uint16_t port) {
  endpoint e;
  if (ip.empty() || !detail::parse_ip(std::string(ip), port, e)) {
    detail::throw_invalid_address("from_ip", ip, "not a numeric IP address");
  }
  return e;
}

bool endpoint::is_v6() const noexcept {
  return reinterpret_cast<const sockaddr*>(storage_)->sa_family == AF_INET6;
}

std::uint16_t endpoint::port() const noexcept {
  return ntohs(is_v6() ? reinterpret_cast<const sockaddr_in6*>(storage_)->sin6_port
                       : reinterpret_cast<const sockaddr_in*>(storage_)->sin_port);
}

std::string endpoint::host() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (is_v6()) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(storage_)->sin6_addr, text,
              sizeof text);
  } else {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(storage_)->sin_addr, text,
              sizeof text);
  }
  return text;
}

std::string endpoint::to_string() const {
  std::string text;
  if (is_v6()) text += '[';
  text += host();
  if (is_v6()) text += ']';
  text += ':';
  text += std::to_string(port());
  return text;
}

std::size_t endpoint::native_size() const noexcept {
  return is_v6() ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

bool operator==(const endpoint& a, const endpoint& b) noexcept {
  if (a.is_v6() != b.is_v6() || a.port() != b.port()) return false;
  if (a.is_v6()) {
    return std::memcmp(&reinterpret_cast<const sockaddr_in6*>(a.storage_)->sin6_addr,
                       &reinterpret_cast<const sockaddr_in6*>(b.storage_)->sin6_addr,
                       sizeof(in6_addr)) == 0;
  }
  return reinterpret_cast<const sockaddr_in*>(a.storage_)->sin_addr.s_addr ==
         reinterpret_cast<const sockaddr_in*>(b.storage_)->sin_addr.s_addr;
}

namespace detail {

void throw_invalid_address(const char* op, std::string_view text, const char* why) {
  throw net_error(std::make_error_code(std::errc::invalid_argument),
                  std::string(op) + " \"" + std::string(text) + "\": " + why);
}

host_port split_host_port(const char* op, std::string_view text) {
  host_port out;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) throw_invalid_address(op, text, "missing ']'");
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      throw_invalid_address(op, text, "missing port");
    }
    out.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) throw_invalid_address(op, text, "missing port");
    if (text.find(':') != colon) {
      throw_invalid_address(op, text, "too many colons (an IPv6 address needs brackets)");
    }
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  if (port_text.empty() || port_text.size() > 5) throw_invalid_address(op, text, "invalid port");
  unsigned value = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9') throw_invalid_address(op, text, "invalid port");
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535) throw_invalid_address(op, text, "invalid port");
  out.port = static_cast<std::uint16_t>(value);
  return out;
}

bool parse_ip(const std::string& host, std::uint16_t port, endpoint& out) noexcept {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = htons(port);
  if (host.empty() || inet_pton(AF_INET, host.c_str(), &v4.sin_addr) == 1) {
    out = endpoint(&v4, sizeof v4);
    return true;
  }
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  v6.sin6_port = htons(port);
  if (inet_pton(AF_INET6, host.c_str(), &v6.sin6_addr) == 1) {
    out = endpoint(&v6, sizeof v6);
    return true;
  }
  return false;
}

namespace {

struct resolve_op;

// resolve_request: the libuv request, on the heap; `op` is null once the
// waiting fiber gave up (the loop only).
struct resolve_request {
  uv_getaddrinfo_t req;
  resolve_op* op;
  std::string host;
};

struct resolve_op : loop_op {
  resolve_op(std::string h, std::uint16_t p, time_point deadline) noexcept
      : loop_op(start, deadline), host(std::move(h)), port(p) {
    on_timeout = give_up;
  }

  static void start(loop_request* r, uv_loop_t* loop) noexcept {
    auto* op = static_cast<resolve_op*>(r);
    auto* request = new resolve_request{{}, op, op->host};
    op->request = request;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    const int rc =
        uv_getaddrinfo(loop, &request->req, done, request->host.c_str(), nullptr, &hints);
    if (rc != 0) {
      delete request;
      op->finish(rc);
      return;
    }
    op->arm_deadline();
  }

  static void give_up(loop_op* self) noexcept {
    auto* op = static_cast<resolve_op*>(self);
    op->request->op = nullptr;
    uv_cancel(reinterpret_cast<uv_req_t*>(&op->request->req));
    op->finish(UV_ETIMEDOUT);
  }

  static void done(uv_getaddrinfo_t* req, int status, addrinfo* results) {
    auto* request = reinterpret_cast<resolve_request*>(req);
    if (resolve_op* op = request->op) {
      if (status == 0) op->collect(results);
      op->finish(status);
    }
    uv_freeaddrinfo(results);
    delete request;
  }

  void collect(const addrinfo* results) noexcept {
    for (const addrinfo* ai = results; ai != nullptr; ai = ai->ai_next) {
      if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
      sockaddr_in6 copy{};
      std::memcpy(&copy, ai->ai_addr, std::min<std::size_t>(ai->ai_addrlen, sizeof copy));
      if (ai->ai_family == AF_INET) {
        reinterpret_cast<sockaddr_in*>(&copy)->sin_port = htons(port);
      } else {
        copy.sin6_port = htons(port);
      }
      endpoint e(&copy, sizeof copy);
      bool seen = false;
      for (const endpoint& old : found) seen = seen || old == e;
      if (!seen) found.push_back(e);
    }
  }

  std::string host;
  std::uint16_t port;
  resolve_request* request = nullptr;
  std::vector<endpoint> found;
};

}  // namespace
}  // namespace detail

std::vector<endpoint> resolve(std::string_view host, std::uint16_t port, io_deadline deadline) {
  endpoint numeric;
  if (!host.empty() && detail::parse_ip(std::string(host), port, numeric)) return {numeric};
  if (host.empty()) detail::throw_invalid_address("resolve", host, "empty host name");
  detail::resolve_op op(std::string(host), port, deadline.at());
  const int status = op.wait();
  if (op.timed_out()) detail::throw_net_error("resolve", std::string(host), UV_ETIMEDOUT);
  if (status != 0) detail::throw_net_error("resolve", std::string(host), status);
  if (op.found.empty()) detail::throw_net_error("resolve", std::string(host), UV_EAI_NODATA);
  return std::move(op.found);
}

}  // namespace spindle
