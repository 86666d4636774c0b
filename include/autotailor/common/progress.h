// Progress of long work: a line redrawn in place on a terminal, a log line every 10 s when
// stderr is not a terminal (CI logs).
#pragma once

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <string>

namespace autotailor {

class Progress {
 public:
  Progress(std::string what, size_t total, size_t first = 0)
      : what_(std::move(what)), total_(total), first_(first) {}
  // `detail` is shown after the counts (loss, throughput...).
  void step(size_t done, const std::string& detail = {}) {
    auto now = std::chrono::steady_clock::now();
    double secs = std::chrono::duration<double>(now - start_).count();
    size_t here = done > first_ ? done - first_ : 0;  // work done by this run (after a resume)
    double eta = here ? secs / static_cast<double>(here) * static_cast<double>(total_ - done) : 0;
    std::string sep = detail.empty() ? "" : "  ";
    if (tty_) {
      std::cerr << fmt::format("\r{} {}/{}{}{}  {:.0f} s elapsed, ETA {:.0f} s   ", what_, done,
                               total_, sep, detail, secs, eta)
                << std::flush;
      if (done == total_) std::cerr << "\n";
    } else if (now - last_ > std::chrono::seconds(10) || done == total_) {
      spdlog::info("{} {}/{}{}{} ({:.0f} s elapsed, ETA {:.0f} s)", what_, done, total_, sep,
                   detail, secs, eta);
      last_ = now;
    }
  }

 private:
  std::string what_;
  size_t total_, first_;
  bool tty_ = ::isatty(2) != 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_ = start_;
};

}  // namespace autotailor
