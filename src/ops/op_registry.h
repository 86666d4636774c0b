// Per-operator knowledge, one op family per file, found through this registry: adding an op
// touches one file. Internal to src/; LibTorch types stay out of the public headers.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "autotailor/common/error.h"
#include "autotailor/exec/executor.h"
#include "autotailor/ir/graph.h"

namespace autotailor::supernet {
struct ChannelContext;
}

namespace autotailor::ops {

using Tensors = std::vector<at::Tensor>;

// What an op sees when its kernel is built: the node, the graph and static facts about the
// inputs. Kernels are built once per executor; nothing is looked up by name at run time.
struct OpContext {
  const ir::Graph& graph;
  const ir::Node& node;
  bool training = false;  // autograd may run through the kernel: no in-place updates
  std::shared_ptr<const exec::BatchNormMode> batchnorm;  // null: inference form

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

// An element-wise op folded into the kernel of the op that produces its input (a oneDNN
// post-op), so that the intermediate tensor is never written out.
struct PostOp {
  enum class Kind { Relu, LeakyRelu, Clip, HardSwish, HardSigmoid, Sigmoid, Tanh, Sum };
  Kind kind = Kind::Relu;
  float alpha = 0, beta = 0;  // LeakyRelu slope; Clip bounds; HardSigmoid alpha*x+beta
  // Sum: the other addend is appended to the fused kernel's inputs. `inplace`: that addend
  // is used by the fused Add alone, so the kernel may accumulate into its buffer.
  bool inplace = false;
};

struct OpDef {
  std::string_view type;
  // Builds the kernel; throws Unsupported for attribute values or types it cannot run.
  Kernel (*build)(const OpContext&) = nullptr;
  // Multiply-accumulates for one inference at the graph's static shapes; null means none.
  int64_t (*macs)(const OpContext&) = nullptr;
  // Element-wise ops: what this node becomes when fused into its input's producer, if it can.
  std::optional<PostOp> (*as_post_op)(const OpContext&) = nullptr;
  // Ops that absorb post-ops (inference only): a kernel computing the op followed by `post`.
  // Its inputs are the node's inputs, then one addend per Sum post-op; returns an empty
  // Kernel when this configuration cannot fuse.
  Kernel (*build_fused)(const OpContext&, const std::vector<PostOp>& post) = nullptr;
  // How the op maps channels from inputs to outputs (src/supernet/channels.h); ops without a
  // rule freeze the channels they touch.
  void (*channels)(supernet::ChannelContext&) = nullptr;
};

const OpDef* find_op(std::string_view type);  // default ONNX domain only
std::vector<std::string> op_types();

struct RegisterOps {
  explicit RegisterOps(std::initializer_list<OpDef> defs);
};

// Adds channel rules to ops registered above it (kept next to the op's kernel).
struct RegisterChannelRules {
  RegisterChannelRules(
      std::initializer_list<std::pair<std::string_view, void (*)(supernet::ChannelContext&)>>
          rules);
};

// The tensor's memory belongs to it alone once its producer ran: no view of another tensor.
bool owns_memory(const ir::Graph& g, int tensor_id);

// Helpers shared by the op files.
// A tensor viewing a constant's bytes without copying; keeps them alive.
at::Tensor tensor_from_const(const std::shared_ptr<const ir::ConstData>& c);
std::vector<int64_t> to_int64s(const at::Tensor& t);  // small integer tensors (shapes, axes)
at::ScalarType to_scalar_type(ir::DType t);
ir::DType from_scalar_type(at::ScalarType t);
int64_t normalize_axis(int64_t axis, int64_t rank, const OpContext& ctx);

}  // namespace autotailor::ops
