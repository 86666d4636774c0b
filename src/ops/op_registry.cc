#include "op_registry.h"

#include <algorithm>
#include <map>
#include <set>

namespace autotailor::ops {

namespace {
std::map<std::string, OpDef, std::less<>>& registry() {
  static std::map<std::string, OpDef, std::less<>> r;
  return r;
}
}  // namespace

RegisterOps::RegisterOps(std::initializer_list<OpDef> defs) {
  for (const OpDef& d : defs) registry().emplace(std::string(d.type), d);
}

RegisterChannelRules::RegisterChannelRules(
    std::initializer_list<std::pair<std::string_view, void (*)(supernet::ChannelContext&)>> rules) {
  for (const auto& [type, fn] : rules) {
    auto it = registry().find(type);
    if (it != registry().end()) it->second.channels = fn;
  }
}

const OpDef* find_op(std::string_view type) {
  auto it = registry().find(type);
  return it == registry().end() ? nullptr : &it->second;
}

std::vector<std::string> op_types() {
  std::vector<std::string> v;
  for (const auto& [k, _] : registry()) v.push_back(k);
  return v;
}

bool owns_memory(const ir::Graph& g, int tensor_id) {
  // Ops whose kernels always return fresh memory (or, in place, memory they were allowed to
  // overwrite). Everything else may return a view of its input (Reshape, Expand, Slice...) or
  // the input itself (Identity, Cast to the same type, Clip without bounds, Constant).
  static const std::set<std::string, std::less<>> fresh = {"Conv",
                                                           "Gemm",
                                                           "MatMul",
                                                           "BatchNormalization",
                                                           "InstanceNormalization",
                                                           "LayerNormalization",
                                                           "MaxPool",
                                                           "AveragePool",
                                                           "GlobalAveragePool",
                                                           "GlobalMaxPool",
                                                           "Concat",
                                                           "Softmax",
                                                           "LogSoftmax",
                                                           "Relu",
                                                           "Sigmoid",
                                                           "Tanh",
                                                           "LeakyRelu",
                                                           "HardSigmoid",
                                                           "HardSwish",
                                                           "Add",
                                                           "Sub",
                                                           "Mul",
                                                           "Div",
                                                           "Pow",
                                                           "Erf",
                                                           "Sqrt",
                                                           "Exp",
                                                           "Log",
                                                           "Neg",
                                                           "Abs",
                                                           "Reciprocal",
                                                           "Elu",
                                                           "Selu",
                                                           "Softplus",
                                                           "Softsign",
                                                           "PRelu",
                                                           "Gather",
                                                           "Where"};
  const ir::Tensor& t = g.tensor(tensor_id);
  if (t.is_const() || t.producer < 0) return false;
  const ir::Node& p = g.nodes[t.producer];
  return p.domain.empty() && fresh.count(p.op_type) > 0;
}

bool OpContext::can_overwrite(size_t k) const {
  if (training || !has_in(k)) return false;
  const ir::Tensor& t = in(k);
  if (!owns_memory(graph, node.inputs[k])) return false;
  if (t.consumers.size() != 1) return false;
  int id = node.inputs[k];
  for (int o : graph.outputs)
    if (o == id) return false;
  // The same tensor twice among this node's inputs counts as two uses.
  return std::count(node.inputs.begin(), node.inputs.end(), id) == 1;
}

at::Tensor tensor_from_const(const std::shared_ptr<const ir::ConstData>& c) {
  auto type = to_scalar_type(c->dtype);
  auto keep = c;
  void* data = const_cast<std::byte*>(c->bytes->data());
  return at::from_blob(
      data, c->shape, [keep](void*) {}, at::TensorOptions().dtype(type));
}

std::vector<int64_t> to_int64s(const at::Tensor& t) {
  at::Tensor c = t.to(at::kLong).contiguous().reshape({-1});
  const int64_t* p = c.data_ptr<int64_t>();
  return std::vector<int64_t>(p, p + c.numel());
}

at::ScalarType to_scalar_type(ir::DType t) {
  switch (t) {
    case ir::DType::Float32:
      return at::kFloat;
    case ir::DType::Float64:
      return at::kDouble;
    case ir::DType::Float16:
      return at::kHalf;
    case ir::DType::BFloat16:
      return at::kBFloat16;
    case ir::DType::Int64:
      return at::kLong;
    case ir::DType::Int32:
      return at::kInt;
    case ir::DType::Int16:
      return at::kShort;
    case ir::DType::Int8:
      return at::kChar;
    case ir::DType::UInt8:
      return at::kByte;
    case ir::DType::Bool:
      return at::kBool;
    default:
      unsupported("data type {} is not supported by the executor", ir::dtype_name(t));
  }
}

ir::DType from_scalar_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return ir::DType::Float32;
    case at::kDouble:
      return ir::DType::Float64;
    case at::kHalf:
      return ir::DType::Float16;
    case at::kBFloat16:
      return ir::DType::BFloat16;
    case at::kLong:
      return ir::DType::Int64;
    case at::kInt:
      return ir::DType::Int32;
    case at::kShort:
      return ir::DType::Int16;
    case at::kChar:
      return ir::DType::Int8;
    case at::kByte:
      return ir::DType::UInt8;
    case at::kBool:
      return ir::DType::Bool;
    default:
      unsupported("tensor type {} has no ONNX equivalent here", at::toString(t));
  }
}

int64_t normalize_axis(int64_t axis, int64_t rank, const OpContext& ctx) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= std::max<int64_t>(rank, 1))
    fail("{}: axis {} is out of range for rank {}", ctx.where(), axis, rank);
  return a;
}

}  // namespace autotailor::ops
