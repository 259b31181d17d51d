// lib/sched/task_access.hpp: the runtime's window into task_base's private state.
#pragma once

#include <cstdint>
#include <string_view>

#include "spindle/detail/task.hpp"

namespace spindle::detail {

class task_access {
 public:
  // start: records the fiber's id and name and adds the handle's reference.
  static void start(task_base& t, std::uint64_t id, std::string_view name);
};

}  // namespace spindle::detail
