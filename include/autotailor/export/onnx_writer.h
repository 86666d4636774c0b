// Writes TailorIR back to ONNX: initializers for constants, the file's opsets, ONNX names.
#pragma once

#include <string>

#include "autotailor/ir/graph.h"

namespace autotailor {

std::string serialize_onnx(const ir::Graph& g);
void save_onnx(const ir::Graph& g, const std::string& path);  // atomic

}  // namespace autotailor
