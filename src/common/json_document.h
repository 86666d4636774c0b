// Reading the project's JSON files (space.json, subnet configs, LUTs): one-line errors naming
// the file, and a check of the "format" field (internal).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "autotailor/common/error.h"

namespace autotailor {

inline nlohmann::json parse_document(const std::string& text, const std::string& source,
                                     const std::string& format, const std::string& what) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    fail("{}: not valid JSON: {}", source, msg.substr(0, msg.find('\n')));
  }
  // (value() would throw a type_error on a "format" that is not a string: found by fuzzing)
  if (!j.is_object() || !j.contains("format") || !j["format"].is_string() ||
      j["format"].get<std::string>() != format)
    fail("{}: not {} (no \"format\": \"{}\")", source, what, format);
  return j;
}

}  // namespace autotailor
