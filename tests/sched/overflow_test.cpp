// tests/sched/overflow_test.cpp: death tests: a fiber overflowing its stack
// ends the program with a message naming the fiber and the stack size.
// The overflowing program is overflow_child (path in SPINDLE_OVERFLOW_CHILD).
#include <doctest/doctest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "guard_regions.hpp"

extern char** environ;

namespace {

struct outcome {
  int status = 0;
  std::string error_output;
};

// run_child: runs overflow_child with `mode`, with extra environment entries.
outcome run_child(const char* mode, const char* extra_env) {
  const char* child = std::getenv("SPINDLE_OVERFLOW_CHILD");
  REQUIRE(child != nullptr);
  int pipe_fds[2];
  REQUIRE(pipe(pipe_fds) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  std::string env_entry = extra_env;
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) env.push_back(*e);
  if (!env_entry.empty()) env.push_back(env_entry.data());
  env.push_back(nullptr);
  char* args[] = {const_cast<char*>(child), const_cast<char*>(mode), nullptr};
  pid_t pid;
  REQUIRE(posix_spawn(&pid, child, &actions, nullptr, args, env.data()) == 0);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  outcome result;
  char buffer[4096];
  ssize_t n;
  while ((n = read(pipe_fds[0], buffer, sizeof buffer)) > 0)
    result.error_output.append(buffer, static_cast<std::size_t>(n));
  close(pipe_fds[0]);
  REQUIRE(waitpid(pid, &result.status, 0) == pid);
  return result;
}

}  // namespace

// The guard is a guard region where the kernel has them (no mapping of its
// own), else an mprotect'ed page (one more PROT_NONE mapping).
TEST_CASE("overflowing a guarded stack aborts with a message naming the fiber") {
  const outcome o = run_child("guarded", "");
  INFO("overflow_child\'s stderr: " << o.error_output);
  REQUIRE(WIFSIGNALED(o.status));
  CHECK(WTERMSIG(o.status) == SIGABRT);
  CHECK(o.error_output.find("spindle: stack overflow in fiber ") != std::string::npos);
  CHECK(o.error_output.find("(deep), stack size 65536;") != std::string::npos);
  CHECK(o.error_output.find("SPINDLE_STACK_SIZE") != std::string::npos);
  const bool regions = spindle_test::kernel_has_guard_regions();
  CHECK(o.error_output.find(regions ? "guard page mapping: rw-p\n"
                                    : "guard page mapping: ---p\n") != std::string::npos);
}

TEST_CASE("with guard regions turned off, the guard page is an mprotect'ed mapping") {
  const outcome o = run_child("guarded", "SPINDLE_GUARD_REGIONS=0");
  INFO("overflow_child\'s stderr: " << o.error_output);
  REQUIRE(WIFSIGNALED(o.status));
  CHECK(WTERMSIG(o.status) == SIGABRT);
  CHECK(o.error_output.find("(deep), stack size 65536;") != std::string::npos);
  CHECK(o.error_output.find("guard page mapping: ---p\n") != std::string::npos);
}

TEST_CASE("overflowing an unguarded stack is caught when the fiber ends") {
  const outcome o = run_child("unguarded", "SPINDLE_GUARDED_STACKS=0");
  INFO("overflow_child\'s stderr: " << o.error_output);
  REQUIRE(WIFSIGNALED(o.status));
  CHECK(WTERMSIG(o.status) == SIGABRT);
  CHECK(o.error_output.find("(deep), stack size 65536 (unguarded stack") != std::string::npos);
}
