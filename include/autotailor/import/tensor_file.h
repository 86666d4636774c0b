// Tensors on the command line: ONNX TensorProto files (.pb), the format of ONNX's own backend
// test data.
#pragma once

#include <memory>
#include <string>

#include "autotailor/ir/graph.h"

namespace autotailor {

std::shared_ptr<const ir::ConstData> read_tensor_file(const std::string& path);
void write_tensor_file(const std::string& path, const ir::ConstData& value,
                       const std::string& name = "");

}  // namespace autotailor
