// Errors a user can trigger. Every message names the file, node or option at fault.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace autotailor {

// A problem with the user's input or options: reported as one line, exit status 1.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An operator, attribute or data type the executor does not implement. Distinct from Error so
// that test harnesses can tell "unsupported" from "wrong".
class Unsupported : public Error {
 public:
  using Error::Error;
};

// A bad option value found after parsing (a malformed --shard, an unknown --freeze name):
// exit status 2, like the option errors CLI11 finds itself.
class UsageError : public Error {
 public:
  using Error::Error;
};

template <class... Args>
[[noreturn]] void usage_fail(fmt::format_string<Args...> f, Args&&... args) {
  throw UsageError(fmt::format(f, std::forward<Args>(args)...));
}

template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

template <class... Args>
[[noreturn]] void unsupported(fmt::format_string<Args...> f, Args&&... args) {
  throw Unsupported(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace autotailor
