#include "autotailor/import/tensor_file.h"

#include "autotailor/common/error.h"
#include "autotailor/common/files.h"
#include "proto_convert.h"

namespace autotailor {

std::shared_ptr<const ir::ConstData> read_tensor_file(const std::string& path) {
  std::string bytes = read_file(path);
  onnx::TensorProto t;
  if (bytes.empty() || !t.ParseFromString(bytes) || t.data_type() == 0)
    fail("'{}' is not an ONNX TensorProto file", path);
  if (t.data_location() == onnx::TensorProto::EXTERNAL)
    fail("'{}': tensors with external data are not supported here", path);
  return proto::to_const(t, "'" + path + "'");
}

void write_tensor_file(const std::string& path, const ir::ConstData& value,
                       const std::string& name) {
  onnx::TensorProto t;
  proto::from_const(value, name, &t);
  write_file_atomic(path, t.SerializeAsString());
}

}  // namespace autotailor
