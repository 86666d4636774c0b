#include "autotailor/train/parameters.h"

#include <ATen/ATen.h>

#include <set>

namespace autotailor::train {

namespace {

// Which inputs of an op are learned parameters (when they are float constants).
std::set<size_t> trainable_inputs(const std::string& op) {
  if (op == "Conv" || op == "Gemm" || op == "BatchNormalization" || op == "InstanceNormalization" ||
      op == "LayerNormalization")
    return {1, 2};
  if (op == "MatMul") return {0, 1};
  if (op == "PRelu") return {1};
  return {};
}

}  // namespace

ParameterStore::ParameterStore(const ir::Graph& g) {
  for (const ir::Node& n : g.nodes) {
    if (!n.domain.empty()) continue;
    std::set<size_t> learn = trainable_inputs(n.op_type);
    bool bn = n.op_type == "BatchNormalization";
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      if (!n.has_input(k)) continue;
      const ir::Tensor& t = g.tensor(n.inputs[k]);
      if (!t.is_const() || t.dtype != ir::DType::Float32) continue;
      bool trainable = learn.count(k) > 0;
      bool buffer = bn && (k == 3 || k == 4);
      if (!trainable && !buffer) continue;
      const ir::ConstData* key = t.value.get();
      if (entries_.count(key)) continue;
      // An owned copy: the graph's constant bytes stay untouched until write_back.
      at::Tensor v = exec::tensor_from_const(t.value).clone();
      if (trainable) v.requires_grad_(true);
      entries_.emplace(key, Entry{t.name, v, trainable});
      order_.push_back(key);
    }
  }
}

int ParameterStore::bind(exec::Executor& ex) const {
  const ir::Graph& g = ex.graph();
  int bound = 0;
  for (size_t i = 0; i < g.tensors.size(); ++i) {
    const ir::Tensor& t = g.tensors[i];
    if (!t.is_const()) continue;
    auto it = entries_.find(t.value.get());
    if (it == entries_.end()) continue;
    ex.bind_constant(static_cast<int>(i), exec::select_view(it->second.value, t.select));
    ++bound;
  }
  return bound;
}

std::vector<at::Tensor> ParameterStore::weights() const {
  std::vector<at::Tensor> r;
  for (const ir::ConstData* k : order_) {
    const Entry& e = entries_.at(k);
    if (e.trainable && e.value.dim() >= 2) r.push_back(e.value);
  }
  return r;
}

std::vector<at::Tensor> ParameterStore::others() const {
  std::vector<at::Tensor> r;
  for (const ir::ConstData* k : order_) {
    const Entry& e = entries_.at(k);
    if (e.trainable && e.value.dim() < 2) r.push_back(e.value);
  }
  return r;
}

std::map<std::string, at::Tensor> ParameterStore::named() const {
  std::map<std::string, at::Tensor> r;
  for (const auto& [k, e] : entries_) r.emplace(e.name, e.value);
  return r;
}

size_t ParameterStore::parameter_count() const {
  size_t n = 0;
  for (const auto& [k, e] : entries_)
    if (e.trainable) n += static_cast<size_t>(e.value.numel());
  return n;
}

std::shared_ptr<ir::Graph> ParameterStore::write_back(const ir::Graph& g) const {
  auto out = std::make_shared<ir::Graph>(g);
  for (ir::Tensor& t : out->tensors) {
    if (!t.is_const()) continue;
    auto it = entries_.find(t.value.get());
    if (it != entries_.end()) t.value = exec::const_from_tensor(it->second.value);
  }
  return out;
}

}  // namespace autotailor::train
