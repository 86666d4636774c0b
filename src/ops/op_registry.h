// Per-operator knowledge, one op family per file, found through this registry: adding an op
// touches one file. Internal to src/; LibTorch types stay out of the public headers.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "autotailor/common/error.h"
#include "autotailor/ir/graph.h"

namespace autotailor::ops {

using Tensors = std::vector<at::Tensor>;

// What an op sees when its kernel is built: the node, the graph and static facts about the
// inputs. Kernels are built once per executor; nothing is looked up by name at run time.
struct OpContext {
  const ir::Graph& graph;
  const ir::Node& node;
  bool training = false;  // autograd may run through the kernel: no in-place updates

  int64_t opset() const { return graph.opset(); }
  bool has_in(size_t k) const { return node.has_input(k); }
  const ir::Tensor& in(size_t k) const { return graph.tensor(node.inputs.at(k)); }
  const ir::Tensor& out(size_t k) const { return graph.tensor(node.outputs.at(k)); }
  // Constant contents of input k, or nullptr when it is computed at run time or absent.
  const ir::ConstData* const_in(size_t k) const { return has_in(k) ? in(k).value.get() : nullptr; }
  // Input k may be overwritten by the kernel: an intermediate used by this node alone.
  bool can_overwrite(size_t k) const;
  std::string where() const { return graph.describe(node); }
};

// Runs one node. `in` holds the node's inputs in order (undefined for omitted optional ones);
// `out` has one slot per node output.
using Kernel = std::function<void(const Tensors& in, Tensors& out)>;

struct OpDef {
  std::string_view type;
  // Builds the kernel; throws Unsupported for attribute values or types it cannot run.
  Kernel (*build)(const OpContext&) = nullptr;
  // Multiply-accumulates for one inference at the graph's static shapes; null means none.
  int64_t (*macs)(const OpContext&) = nullptr;
};

const OpDef* find_op(std::string_view type);  // default ONNX domain only
std::vector<std::string> op_types();

struct RegisterOps {
  explicit RegisterOps(std::initializer_list<OpDef> defs);
};

// Helpers shared by the op files.
// A tensor viewing a constant's bytes without copying; keeps them alive.
at::Tensor tensor_from_const(const std::shared_ptr<const ir::ConstData>& c);
std::vector<int64_t> to_int64s(const at::Tensor& t);  // small integer tensors (shapes, axes)
at::ScalarType to_scalar_type(ir::DType t);
ir::DType from_scalar_type(at::ScalarType t);
int64_t normalize_axis(int64_t axis, int64_t rank, const OpContext& ctx);

}  // namespace autotailor::ops
