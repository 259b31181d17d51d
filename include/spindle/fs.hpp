// spindle/fs.hpp: files, with the blocking system calls on libuv's thread pool.
//
//   spindle::fs::write_file("/tmp/greeting", "hello\n");
//   std::string text = spindle::fs::read_file("/tmp/greeting");
//   spindle::fs::file f = spindle::fs::open("/tmp/log", spindle::fs::write_only |
//                                           spindle::fs::create | spindle::fs::append);
//   f.write("line\n");
//
// Every call parks the calling fiber while the operation runs on libuv's
// thread pool (UV_THREADPOOL_SIZE threads, 4 by default), so the fiber's
// worker keeps running other fibers; from a plain thread the call simply
// blocks. There are no deadlines: disk operations are not cancellable once
// started. Failures throw std::system_error with the errno and a message
// naming the operation and the path ("open /nope: No such file or directory").
// A file may be used by one fiber at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace spindle::fs {

// open_flags: how open() opens a file; combine with |.
enum open_flags : int {
  read_only = 0x01,
  write_only = 0x02,
  read_write = 0x03,
  create = 0x04,     // create it if missing (with `mode`)
  truncate = 0x08,   // empty it
  append = 0x10,     // every write goes to the end
  exclusive = 0x20,  // with create: fail if it exists
};
constexpr open_flags operator|(open_flags a, open_flags b) noexcept {
  return static_cast<open_flags>(static_cast<int>(a) | static_cast<int>(b));
}

// file_info: what stat() reports.
struct file_info {
  std::uint64_t size = 0;
  std::uint32_t mode = 0;  // permission bits and file type, as st_mode
  bool is_regular = false;
  bool is_directory = false;
  std::chrono::system_clock::time_point modified{};
};

// file: an open file. Move-only; destroying it closes it (errors ignored;
// call close() to see them).
class file {
 public:
  file() noexcept = default;
  file(file&& other) noexcept;
  file& operator=(file&& other) noexcept;
  ~file();

  // read: up to `size` bytes at the current position; returns how many,
  // 0 at end of file. Parks the fiber (blocks a thread).
  std::size_t read(void* data, std::size_t size);
  // read_at: as read, at `offset`, leaving the position alone.
  std::size_t read_at(void* data, std::size_t size, std::uint64_t offset);
  // write: writes all `size` bytes at the current position (the end, with
  // append). Parks the fiber (blocks a thread).
  void write(const void* data, std::size_t size);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  // write_at: as write, at `offset`.
  void write_at(const void* data, std::size_t size, std::uint64_t offset);
  // stat: the open file's size, mode and time. Parks the fiber.
  file_info stat();
  // sync: flushes the file to the disk (fsync). Parks the fiber.
  void sync();
  // close: closes it; reports the error of a failed close. Idempotent.
  void close();
  bool is_open() const noexcept { return fd_ >= 0; }

 private:
  friend file open(const std::string& path, open_flags flags, int mode);
  file(int fd, std::string path) noexcept : fd_(fd), path_(std::move(path)) {}
  void write_from(const char* data, std::size_t size, std::int64_t offset);

  int fd_ = -1;
  std::string path_;  // for error messages
};

// open: opens `path`. Throws std::system_error ("open PATH: ...").
file open(const std::string& path, open_flags flags = read_only, int mode = 0644);
// read_file: the whole content of `path`.
std::string read_file(const std::string& path);
// write_file: replaces the content of `path` with `bytes` (creating it with `mode`).
void write_file(const std::string& path, std::string_view bytes, int mode = 0644);
// stat: the size, mode and time of `path` (following symbolic links).
file_info stat(const std::string& path);
// remove: deletes the file `path` (unlink).
void remove(const std::string& path);

}  // namespace spindle::fs
