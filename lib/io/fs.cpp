// lib/io/fs.cpp: spindle::fs on libuv's thread pool.
//
// Each call is an fs_op (a loop_op): the loop issues the uv_fs_* call
// with a callback, libuv runs the system call on a pool thread, and the
// callback (on the loop) finishes the op, waking the parked caller. The
// uv_fs_t lives in the op on the caller's stack; the caller reads the result
// and releases libuv's allocations (uv_fs_req_cleanup) once woken.
#include "spindle/fs.hpp"

#include <fcntl.h>

#include <system_error>
#include <utility>

#include "io/loop_op.hpp"

namespace spindle::fs {
namespace {

using detail::loop_op;

struct fs_op : loop_op {
  using issue_fn = int (*)(uv_loop_t*, fs_op*) noexcept;
  explicit fs_op(issue_fn f) noexcept : loop_op(start), issue(f) {}
  fs_op(const fs_op&) = delete;
  ~fs_op() { uv_fs_req_cleanup(&request); }

  static void start(detail::loop_request* r, uv_loop_t* loop) noexcept {
    auto* op = static_cast<fs_op*>(r);
    op->request.data = op;
    const int rc = op->issue(loop, op);
    if (rc < 0) op->finish(rc);
  }
  static void done(uv_fs_t* req) {
    static_cast<fs_op*>(req->data)->finish(static_cast<int>(std::min<ssize_t>(req->result, 0)));
  }

  // run: waits; returns req.result, or throws "OP PATH: error".
  ssize_t run(const char* what, const std::string& path) {
    const int status = wait();
    if (status < 0)
      throw std::system_error(detail::uv_error_code(status), std::string(what) + " " + path);
    return request.result;
  }

  issue_fn issue;
  uv_fs_t request{};
  const char* path = nullptr;
  uv_file file = -1;
  uv_buf_t buffer{};
  std::int64_t offset = -1;
  int flags = 0;
  int mode = 0;
};

int posix_flags(open_flags flags) noexcept {
  int out = O_CLOEXEC;
  switch (flags & read_write) {
    case write_only:
      out |= O_WRONLY;
      break;
    case read_write:
      out |= O_RDWR;
      break;
    default:
      out |= O_RDONLY;
      break;
  }
  if (flags & create) out |= O_CREAT;
  if (flags & truncate) out |= O_TRUNC;
  if (flags & append) out |= O_APPEND;
  if (flags & exclusive) out |= O_EXCL;
  return out;
}

file_info info_from(const uv_stat_t& st) noexcept {
  file_info info;
  info.size = st.st_size;
  info.mode = static_cast<std::uint32_t>(st.st_mode);
  info.is_regular = (st.st_mode & S_IFMT) == S_IFREG;
  info.is_directory = (st.st_mode & S_IFMT) == S_IFDIR;
  info.modified = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
  return info;
}

int open_fd(const std::string& path, open_flags flags, int mode) {
  fs_op op([](uv_loop_t* loop, fs_op* o) noexcept {
    return uv_fs_open(loop, &o->request, o->path, o->flags, o->mode, fs_op::done);
  });
  op.path = path.c_str();
  op.flags = posix_flags(flags);
  op.mode = mode;
  return static_cast<int>(op.run("open", path));
}

std::size_t read_fd(int fd, const std::string& path, void* data, std::size_t size,
                    std::int64_t offset) {
  fs_op op([](uv_loop_t* loop, fs_op* o) noexcept {
    return uv_fs_read(loop, &o->request, o->file, &o->buffer, 1, o->offset, fs_op::done);
  });
  op.file = fd;
  op.buffer = uv_buf_init(static_cast<char*>(data),
                          static_cast<unsigned>(std::min<std::size_t>(size, 1u << 30)));
  op.offset = offset;
  return static_cast<std::size_t>(op.run("read", path));
}

std::size_t write_fd(int fd, const std::string& path, const char* data, std::size_t size,
                     std::int64_t offset) {
  fs_op op([](uv_loop_t* loop, fs_op* o) noexcept {
    return uv_fs_write(loop, &o->request, o->file, &o->buffer, 1, o->offset, fs_op::done);
  });
  op.file = fd;
  op.buffer = uv_buf_init(const_cast<char*>(data),
                          static_cast<unsigned>(std::min<std::size_t>(size, 1u << 30)));
  op.offset = offset;
  return static_cast<std::size_t>(op.run("write", path));
}

void close_fd(int fd, const std::string& path) {
  fs_op op([](uv_loop_t* loop, fs_op* o) noexcept {
    return uv_fs_close(loop, &o->request, o->file, fs_op::done);
  });
  op.file = fd;
  op.run("close", path);
}

}  // namespace

file::file(file&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

file& file::operator=(file&& other) noexcept {
  file old(std::move(other));  // closes what this held when it goes
  std::swap(fd_, old.fd_);
  std::swap(path_, old.path_);
  return *this;
}

file::~file() {
  if (fd_ < 0) return;
  try {
    close();
  } catch (const std::system_error&) {
    // A destructor cannot report it; close() explicitly to see it.
  }
}

std::size_t file::read(void* data, std::size_t size) { return read_fd(fd_, path_, data, size, -1); }

std::size_t file::read_at(void* data, std::size_t size, std::uint64_t offset) {
  return read_fd(fd_, path_, data, size, static_cast<std::int64_t>(offset));
}

void file::write(const void* data, std::size_t size) {
  write_from(static_cast<const char*>(data), size, -1);
}

void file::write_at(const void* data, std::size_t size, std::uint64_t offset) {
  write_from(static_cast<const char*>(data), size, static_cast<std::int64_t>(offset));
}

void file::write_from(const char* data, std::size_t size, std::int64_t offset) {
  while (size > 0) {
    const std::size_t n = write_fd(fd_, path_, data, size, offset);
    data += n;
    size -= n;
    if (offset >= 0) offset += static_cast<std::int64_t>(n);
  }
}

file_info file::stat() {
  fs_op op([](uv_loop_t* loop, fs_op* o) noexcept {
    return uv_fs_fstat(loop, &o->request, o->file, fs_op::done);
  });
  op.file = fd_;
  op.run("stat", path_);
  return info_from(op.request.statbuf);
}

void file::sync() {
  fs_op op([](uv_loop_t* loop, fs_op* o) noexcept {
    return uv_fs_fsync(loop, &o->request, o->file, fs_op::done);
  });
  op.file = fd_;
  op.run("sync", path_);
}

void file::close() {
  if (fd_ < 0) return;
  close_fd(std::exchange(fd_, -1), path_);
}

file open(const std::string& path, open_flags flags, int mode) {
  return file(open_fd(path, flags, mode), path);
}

std::string read_file(const std::string& path) {
  file f = open(path, read_only);
  std::string content;
  std::size_t used = 0;
  content.resize(std::max<std::uint64_t>(f.stat().size, 4096) + 1);
  for (;;) {
    if (used == content.size()) content.resize(content.size() * 2);
    const std::size_t n = f.read(content.data() + used, content.size() - used);
    if (n == 0) break;
    used += n;
  }
  content.resize(used);
  f.close();
  return content;
}

void write_file(const std::string& path, std::string_view bytes, int mode) {
  file f = open(path, write_only | create | truncate, mode);
  f.write(bytes);
  f.close();
}

file_info stat(const std::string& path) {
  fs_op op([](uv_loop_t* loop, fs_op* o) noexcept {
    return uv_fs_stat(loop, &o->request, o->path, fs_op::done);
  });
  op.path = path.c_str();
  op.run("stat", path);
  return info_from(op.request.statbuf);
}

void remove(const std::string& path) {
  fs_op op([](uv_loop_t* loop, fs_op* o) noexcept {
    return uv_fs_unlink(loop, &o->request, o->path, fs_op::done);
  });
  op.path = path.c_str();
  op.run("remove", path);
}

}  // namespace spindle::fs
