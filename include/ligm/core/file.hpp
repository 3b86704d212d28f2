// Whole files as bytes: the readers (io/ and data/) parse bytes in memory, so that they can be
// tested and fuzzed without the file system, and every writer of a file that must survive a
// crash (checkpoints, safetensors, .npy) goes through write_file_atomic.
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "ligm/core/error.hpp"

namespace ligm {

// The bytes of the file at `path`; `op` names the caller in the error when it cannot be read.
inline std::vector<unsigned char> read_file(const std::string& path, const char* op) {
  std::ifstream f(path, std::ios::binary);
  check(f.good(), op, "cannot open \"", path, "\"");
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  check(!f.bad(), op, "reading \"", path, "\" failed");
  return bytes;
}

// Writes `bytes` to "<path>.tmp", flushes them to the disk (fsync), renames the file over `path`
// and syncs the folder: a crash or a power cut at any point leaves either the old file or the
// new one, never a part of either. On failure the temporary file is removed and `path` is left
// as it was.
inline void write_file_atomic(const std::string& path, const std::vector<unsigned char>& bytes, const char* op) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  check(fd >= 0, op, "cannot open \"", tmp, "\" for writing (", std::strerror(errno), ")");
  std::size_t done = 0;
  bool ok = true;
  while (ok && done < bytes.size()) {
    const ::ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  const int write_errno = ok ? 0 : errno;
  ok = ok && ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  if (!ok) {
    const int e = write_errno ? write_errno : errno;
    std::remove(tmp.c_str());
    fail(op, "writing \"", tmp, "\" failed (", std::strerror(e), ")");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    fail(op, "cannot rename \"", tmp, "\" to \"", path, "\" (", std::strerror(e), ")");
  }
  // The rename is durable once the folder's entry is on the disk.
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace ligm
