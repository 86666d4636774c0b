#include "autotailor/common/files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "autotailor/common/error.h"

namespace autotailor {

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail("'{}' is a directory, not a file", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '{}': {}", path, std::strerror(errno));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail("cannot read '{}': {}", path, std::strerror(errno));
  return data;
}

void refuse_unless_regular_or_absent(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::file_status st = fs::symlink_status(path, ec);
  if (ec || st.type() == fs::file_type::not_found || st.type() == fs::file_type::regular) return;
  const char* kind = st.type() == fs::file_type::symlink     ? "a symbolic link"
                     : st.type() == fs::file_type::directory ? "a directory"
                     : st.type() == fs::file_type::character || st.type() == fs::file_type::block
                         ? "a device"
                     : st.type() == fs::file_type::fifo ? "a FIFO"
                                                        : "not a regular file";
  fail("'{}' is {}: refusing to replace it with an output file", path, kind);
}

void refuse_same_file(const std::string& output, const std::string& input,
                      const std::string& what) {
  std::error_code ec;
  if (std::filesystem::equivalent(output, input, ec) && !ec)
    fail("'{}' is {}: refusing to overwrite it", output, what);
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  namespace fs = std::filesystem;
  fs::path target(path);
  refuse_unless_regular_or_absent(path);
  fs::path tmp = target;
  tmp += ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("cannot write '{}': {}", path, std::strerror(errno));
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  ok = std::fflush(f) == 0 && ok;
  ok = ::fsync(fileno(f)) == 0 && ok;
  int err = errno;
  ok = std::fclose(f) == 0 && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    fail("cannot write '{}': {}", path, std::strerror(err));
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    std::remove(tmp.c_str());
    fail("cannot write '{}': {}", path, ec.message());
  }
}

void ensure_writable_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create output directory '{}': {}", dir, ec.message());
  if (!fs::is_directory(dir)) fail("output '{}' exists and is not a directory", dir);
  fs::path probe = fs::path(dir) / (".write-test." + std::to_string(::getpid()));
  FILE* f = std::fopen(probe.c_str(), "wb");
  if (!f) fail("cannot write into '{}': {}", dir, std::strerror(errno));
  std::fclose(f);
  fs::remove(probe, ec);
}

DirLock::DirLock(const std::string& dir) {
  namespace fs = std::filesystem;
  path_ = (fs::path(dir) / ".autotailor.lock").string();
  refuse_unless_regular_or_absent(path_);
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot lock '{}': {}", dir, std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    char pid[32] = {};
    ssize_t n = ::pread(fd_, pid, sizeof(pid) - 1, 0);
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      fail("'{}' is in use by another autotailor process{}: one writer per folder", dir,
           n > 0 ? fmt::format(" (pid {})", std::string(pid, static_cast<size_t>(n))) : "");
    fail("cannot lock '{}': {}", dir, std::strerror(err));
  }
  std::string me = std::to_string(::getpid());
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) < 0) {
    // The pid is only for the refusal message; the lock holds without it.
  }
  // Holding the lock, no other writer is here: temporaries left by a killed run are stale.
  for (const char* sub : {"", "variants", "ir"}) {
    fs::path d = fs::path(dir) / sub;
    std::error_code ec;
    if (!fs::is_directory(d, ec)) continue;
    for (const auto& e : fs::directory_iterator(d, ec)) {
      std::string name = e.path().filename().string();
      if (name.find(".tmp.") != std::string::npos && e.is_regular_file(ec))
        fs::remove(e.path(), ec);
    }
  }
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock; the file stays (removing it would race)
}

}  // namespace autotailor
