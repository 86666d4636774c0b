// File access with the project's guarantees: errors name the path, and outputs are written to
// a temporary name and renamed, so a reader never sees a half-written file.
#pragma once

#include <string>
#include <string_view>

namespace autotailor {

std::string read_file(const std::string& path);  // throws Error naming the path
// Refuses (Error naming the path) to replace anything but a regular file: a symlink, device
// node, FIFO or directory at `path` stays as it is.
void write_file_atomic(const std::string& path, std::string_view bytes);
void refuse_unless_regular_or_absent(const std::string& path);
// Refuses (Error) when `output` and `input` name the same existing file: an output would
// destroy what the command reads. `what` says what the input is.
void refuse_same_file(const std::string& output, const std::string& input, const std::string& what);
// Creates `dir` if needed and checks that files can be written there; commands call it before
// any long work, so a bad -o fails at once.
void ensure_writable_dir(const std::string& dir);

// One writer per output folder: an exclusive flock on DIR/.autotailor.lock for the object's
// lifetime (released by the kernel if the process dies). A second writer gets an Error naming
// the folder and the holder's pid. Once locked, temporaries (`*.tmp.*`) a killed run left in
// DIR, DIR/variants and DIR/ir are removed.
class DirLock {
 public:
  explicit DirLock(const std::string& dir);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace autotailor
