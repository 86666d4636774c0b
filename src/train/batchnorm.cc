#include "autotailor/train/batchnorm.h"

#include <algorithm>
#include <cmath>

#include "autotailor/common/error.h"

namespace autotailor::train {

namespace {

// Whether a tensor holds pooled features: walking back through element-wise ops and convs on
// one spatial position, a global pooling comes first (a squeeze-excitation branch, a
// convolutional head on pooled features), rather than a convolution over a feature map.
bool on_pooled_features(const ir::Graph& g, int t) {
  static const char* kPass[] = {"Relu",    "Clip",      "Sigmoid",  "HardSigmoid", "HardSwish",
                                "Tanh",    "Mul",       "Identity", "Flatten",     "Reshape",
                                "Squeeze", "LeakyRelu", "PRelu",    "Elu"};
  for (int depth = 0; depth < 16 && t >= 0; ++depth) {
    int p = g.tensor(t).producer;
    if (p < 0) return false;
    const ir::Node& n = g.nodes[p];
    if (!n.domain.empty()) return false;
    const std::string& op = n.op_type;
    if (op == "GlobalAveragePool" || op == "GlobalMaxPool" || op == "ReduceMean" ||
        op == "ReduceMax" || op == "ReduceL2")
      return true;
    if (op == "AveragePool" || op == "MaxPool") {
      const ir::Shape& y = g.tensor(n.outputs[0]).shape;
      int64_t positions = 1;
      for (size_t d = 2; d < y.size(); ++d) positions *= y[d];
      return positions == 1;
    }
    bool pass = op == "Conv" || std::any_of(std::begin(kPass), std::end(kPass),
                                            [&](const char* k) { return op == k; });
    if (!pass || n.inputs.empty()) return false;
    t = n.inputs[0];
  }
  return false;
}

bool wants_batchnorm(const ir::Graph& g, const ir::Node& n) {
  if (!n.domain.empty() || n.op_type != "Conv" || !n.has_input(1) || n.outputs.size() != 1)
    return false;
  const ir::Tensor& w = g.tensor(n.inputs[1]);
  const ir::Tensor& y = g.tensor(n.outputs[0]);
  if (!w.is_const() || w.dtype != ir::DType::Float32 || y.shape.size() < 3) return false;
  int64_t positions = 1;
  for (size_t d = 2; d < y.shape.size(); ++d) positions *= y.shape[d];
  // One spatial position: a BatchNorm is wanted over a shrunken feature map (the last stage
  // of a small-input network) but not over pooled features.
  if (positions <= 1 && on_pooled_features(g, n.inputs[0])) return false;
  if (std::find(g.outputs.begin(), g.outputs.end(), n.outputs[0]) != g.outputs.end()) return false;
  return std::none_of(y.consumers.begin(), y.consumers.end(), [&](int c) {
    return g.nodes[c].op_type == "BatchNormalization" && g.nodes[c].domain.empty();
  });
}

int add_const(ir::Graph& g, const std::string& stem, std::vector<float> v) {
  ir::Tensor t;
  int64_t c = static_cast<int64_t>(v.size());
  t.dtype = ir::DType::Float32;
  t.shape = {c};
  t.value = ir::ConstData::from_float(v, {c});
  int id = g.unique_tensor(stem);
  std::string name = g.tensor(id).name;
  t.name = name;
  g.tensor(id) = std::move(t);
  return id;
}

}  // namespace

std::vector<std::string> insert_batchnorm(ir::Graph& g) {
  std::vector<char> insert(g.nodes.size(), 0);
  for (size_t i = 0; i < g.nodes.size(); ++i) insert[i] = wants_batchnorm(g, g.nodes[i]);
  std::vector<std::string> added;
  std::vector<ir::Node> old = std::move(g.nodes), nodes;
  nodes.reserve(old.size() * 2);
  for (size_t i = 0; i < old.size(); ++i) {
    const ir::Node& n = old[i];
    nodes.push_back(n);
    if (!insert[i]) continue;
    int y = n.outputs[0];
    ir::Tensor pre;  // copied before add_tensor may move the tensor table
    pre.dtype = g.tensor(y).dtype;
    pre.shape = g.tensor(y).shape;
    int64_t c = pre.shape[1];
    int pre_id = g.unique_tensor(n.name + "/pre_bn");
    pre.name = g.tensor(pre_id).name;
    g.tensor(pre_id) = std::move(pre);
    nodes.back().outputs[0] = pre_id;

    ir::Node bn;
    bn.name = n.name + "/bn";
    for (int k = 2;
         std::any_of(old.begin(), old.end(), [&](const ir::Node& o) { return o.name == bn.name; });
         ++k)
      bn.name = n.name + "/bn" + std::to_string(k);
    bn.op_type = "BatchNormalization";
    std::vector<float> ones(c, 1.0f), zeros(c, 0.0f);
    bn.inputs = {pre_id, add_const(g, bn.name + ".weight", ones),
                 add_const(g, bn.name + ".bias", zeros),
                 add_const(g, bn.name + ".running_mean", zeros),
                 add_const(g, bn.name + ".running_var", ones)};
    bn.outputs = {y};
    ir::Attribute eps;
    eps.kind = ir::Attribute::Kind::Float;
    eps.f = 1e-5f;
    bn.attrs["epsilon"] = eps;
    added.push_back(bn.name);
    nodes.push_back(std::move(bn));
  }
  g.nodes = std::move(nodes);
  g.relink();
  return added;
}

void make_identity(ir::Graph& g, const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    auto it = std::find_if(g.nodes.begin(), g.nodes.end(),
                           [&](const ir::Node& n) { return n.name == name; });
    if (it == g.nodes.end()) fail("no BatchNormalization node '{}'", name);
    const ir::Node& n = *it;
    double eps = n.attr_float("epsilon", 1e-5f);
    std::vector<double> mean = g.tensor(n.inputs[3]).value->to_double();
    std::vector<double> var = g.tensor(n.inputs[4]).value->to_double();
    std::vector<float> scale(mean.size()), bias(mean.size());
    for (size_t i = 0; i < mean.size(); ++i) {
      scale[i] = static_cast<float>(std::sqrt(var[i] + eps));
      bias[i] = static_cast<float>(mean[i]);
    }
    int64_t c = static_cast<int64_t>(mean.size());
    g.tensor(n.inputs[1]).value = ir::ConstData::from_float(scale, {c});
    g.tensor(n.inputs[2]).value = ir::ConstData::from_float(bias, {c});
  }
}

std::vector<std::string> batchnorm_nodes(const ir::Graph& g) {
  std::vector<std::string> r;
  for (const ir::Node& n : g.nodes)
    if (n.domain.empty() && n.op_type == "BatchNormalization") r.push_back(n.name);
  return r;
}

}  // namespace autotailor::train
