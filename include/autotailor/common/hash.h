// Content hashes. FNV-1a 64 of a text as 16 hex digits: stable across machines and standard
// libraries, for content hashes (compile's stage reuse) and ids (latency bundles).
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

// SHA-256 as 64 hex digits: what compile records for every output it names, so that a rerun
// notices a file that was deleted, emptied or replaced (fnv1a64 is not made for that).
class Sha256 {
 public:
  Sha256();
  void update(std::string_view data);
  std::string hex();  // finishes; call once

 private:
  void block(const unsigned char* p);
  uint32_t h_[8];
  unsigned char buf_[64] = {};
  size_t used_ = 0;
  uint64_t total_ = 0;
};
std::string sha256_hex(std::string_view data);
std::string sha256_file(const std::string& path);  // throws Error naming an unreadable path

}  // namespace autotailor
