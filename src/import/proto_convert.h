// Conversions between ONNX protobuf messages and TailorIR values (internal).
#pragma once

#include <onnx/onnx_pb.h>

#include <memory>
#include <string>

#include "autotailor/ir/graph.h"

namespace autotailor::proto {

// Reads a TensorProto's contents (raw_data or the typed fields; external data must already be
// inlined). `where` names the tensor in error messages.
std::shared_ptr<const ir::ConstData> to_const(const onnx::TensorProto& t, const std::string& where);
void from_const(const ir::ConstData& c, const std::string& name, onnx::TensorProto* out);

ir::Attribute to_attribute(const onnx::AttributeProto& a, const std::string& where);
// Returns false for attribute kinds TailorIR does not carry.
bool from_attribute(const std::string& name, const ir::Attribute& a, onnx::AttributeProto* out);

}  // namespace autotailor::proto
