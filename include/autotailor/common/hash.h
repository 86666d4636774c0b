// FNV-1a 64 of a text as 16 hex digits: stable across machines and standard libraries, for
// content hashes (compile's stage reuse) and ids (latency bundles).
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace autotailor {

inline uint64_t fnv1a64(std::string_view text) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

inline std::string fnv1a64_hex(std::string_view text) {
  return fmt::format("{:016x}", fnv1a64(text));
}

}  // namespace autotailor
