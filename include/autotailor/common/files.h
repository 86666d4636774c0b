// File access with the project's guarantees: errors name the path, and outputs are written to
// a temporary name and renamed, so a reader never sees a half-written file.
#pragma once

#include <string>
#include <string_view>

namespace autotailor {

std::string read_file(const std::string& path);  // throws Error naming the path
void write_file_atomic(const std::string& path, std::string_view bytes);
// Creates `dir` if needed and checks that files can be written there; commands call it before
// any long work, so a bad -o fails at once.
void ensure_writable_dir(const std::string& dir);

}  // namespace autotailor
