// lib/io/address.hpp: splitting "host:port" text, shared by TCP, UDP and dial.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "spindle/net.hpp"

namespace spindle::detail {

// host_port: "host:port" split; host without brackets, possibly empty.
struct host_port {
  std::string host;
  std::uint16_t port = 0;
};

// split_host_port: throws net_error (invalid_argument) naming `op` and the text.
host_port split_host_port(const char* op, std::string_view text);

// parse_ip: the numeric address `host` with `port`, or false if host is not
// numeric (a name to resolve). An empty host is 0.0.0.0.
bool parse_ip(const std::string& host, std::uint16_t port, endpoint& out) noexcept;

[[noreturn]] void throw_invalid_address(const char* op, std::string_view text, const char* why);

}  // namespace spindle::detail
