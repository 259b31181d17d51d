// tests/fs/fs_test.cpp: spindle::fs round trips and errors.
#include <doctest/doctest.h>
#include <unistd.h>

#include <spindle/spindle.hpp>
#include <string>

namespace {

// temp_path: a fresh name in the build's temporary directory.
std::string temp_path(const char* tag) {
  static int counter = 0;
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/spindle_fs_test_" +
         std::to_string(::getpid()) + "_" + tag + "_" + std::to_string(++counter);
}

}  // namespace

TEST_CASE("write_file then read_file gives the bytes back, small and large") {
  spindle::go([] {
    for (std::size_t size :
         {std::size_t{0}, std::size_t{1}, std::size_t{4096}, std::size_t{3} << 20}) {
      std::string content(size, '\0');
      for (std::size_t i = 0; i < size; ++i) content[i] = static_cast<char>(i * 7 + 3);
      const std::string path = temp_path("round");
      spindle::fs::write_file(path, content);
      CHECK(spindle::fs::stat(path).size == size);
      CHECK(spindle::fs::stat(path).is_regular);
      CHECK(spindle::fs::read_file(path) == content);
      spindle::fs::remove(path);
    }
  }).join();
}

TEST_CASE("open, write, read_at, append, stat and close") {
  const std::string path = temp_path("file");
  {
    spindle::fs::file f = spindle::fs::open(
        path, spindle::fs::read_write | spindle::fs::create | spindle::fs::exclusive);
    f.write("hello, world");
    char buf[5];
    CHECK(f.read_at(buf, 5, 7) == 5);
    CHECK(std::string(buf, 5) == "world");
    f.write_at("W", 1, 7);
    f.sync();
    CHECK(f.stat().size == 12);
    f.close();
    CHECK_FALSE(f.is_open());
  }
  {
    spindle::fs::file f = spindle::fs::open(path, spindle::fs::write_only | spindle::fs::append);
    f.write("!");
  }
  CHECK(spindle::fs::read_file(path) == "hello, World!");
  CHECK_THROWS_AS(spindle::fs::open(
                      path, spindle::fs::write_only | spindle::fs::create | spindle::fs::exclusive),
                  std::system_error);
  spindle::fs::remove(path);
}

TEST_CASE("a missing file is a system_error naming the path") {
  const std::string path = temp_path("missing");
  try {
    spindle::fs::read_file(path);
    FAIL("read_file succeeded");
  } catch (const std::system_error& e) {
    CHECK(e.code() == std::errc::no_such_file_or_directory);
    CHECK(std::string(e.what()).find("open " + path) == 0);
  }
  CHECK_THROWS_AS(spindle::fs::stat(path), std::system_error);
  CHECK_THROWS_AS(spindle::fs::remove(path), std::system_error);
}

TEST_CASE("many fibers reading files at once") {
  const std::string path = temp_path("shared");
  spindle::fs::write_file(path, "shared content");
  spindle::wait_group done;
  std::atomic<int> ok{0};
  for (int i = 0; i < 100; ++i) {
    done.add(1);
    spindle::go([&] {
      if (spindle::fs::read_file(path) == "shared content") ok.fetch_add(1);
      done.done();
    });
  }
  done.wait();
  CHECK(ok.load() == 100);
  spindle::fs::remove(path);
}
