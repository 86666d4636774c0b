// BatchNorm folding: y = scale * (conv(x) - mean) / sqrt(var + eps) + B becomes one conv with
// weights scaled per output channel and a new bias.
#include <cmath>
#include <map>

#include "autotailor/common/error.h"
#include "autotailor/export/export.h"

namespace autotailor {

namespace {
std::vector<float> floats(const ir::Graph& g, int id) {
  const ir::Tensor& t = g.tensor(id);
  std::vector<float> v;
  for (double d : t.value->to_double()) v.push_back(static_cast<float>(d));
  return v;
}
}  // namespace

int fold_batchnorm(ir::Graph& g) {
  int folded = 0;
  std::vector<char> dead(g.nodes.size(), 0);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    ir::Node& bn = g.nodes[i];
    if (bn.op_type != "BatchNormalization" || bn.outputs.size() != 1 || bn.inputs.size() != 5)
      continue;
    const ir::Tensor& x = g.tensor(bn.inputs[0]);
    if (x.producer < 0 || x.consumers.size() != 1) continue;
    bool params_const = true;
    for (int k = 1; k < 5; ++k) params_const &= g.tensor(bn.inputs[k]).is_const();
    ir::Node& conv = g.nodes[x.producer];
    if (!params_const || conv.op_type != "Conv" || !g.tensor(conv.inputs[1]).is_const() ||
        g.tensor(conv.inputs[1]).dtype != ir::DType::Float32)
      continue;
    const float eps = bn.attr_float("epsilon", 1e-5f);
    auto scale = floats(g, bn.inputs[1]), shift = floats(g, bn.inputs[2]),
         mean = floats(g, bn.inputs[3]), var = floats(g, bn.inputs[4]);
    const ir::ConstData& w = *g.tensor(conv.inputs[1]).value;
    const int64_t cout = w.shape[0], per = w.numel() / cout;
    std::vector<float> bias(cout, 0.0f);
    if (conv.has_input(2)) bias = floats(g, conv.inputs[2]);
    std::vector<float> nw(w.data<float>(), w.data<float>() + w.numel());
    for (int64_t c = 0; c < cout; ++c) {
      float f = scale[c] / std::sqrt(var[c] + eps);
      for (int64_t k = 0; k < per; ++k) nw[c * per + k] *= f;
      bias[c] = (bias[c] - mean[c]) * f + shift[c];
    }
    int wid = g.unique_tensor(g.tensor(conv.inputs[1]).name + "_bn");
    g.tensor(wid).value = ir::ConstData::from_float(nw, w.shape);
    g.tensor(wid).dtype = ir::DType::Float32;
    g.tensor(wid).shape = w.shape;
    int bid = g.unique_tensor(conv.name + "_bn_bias");
    g.tensor(bid).value = ir::ConstData::from_float(bias, {cout});
    g.tensor(bid).dtype = ir::DType::Float32;
    g.tensor(bid).shape = {cout};
    conv.inputs.resize(3);
    conv.inputs[1] = wid;
    conv.inputs[2] = bid;
    conv.outputs[0] = bn.outputs[0];  // the conv now produces what BatchNorm did
    dead[i] = 1;
    ++folded;
  }
  if (folded) {
    std::vector<ir::Node> kept;
    for (size_t i = 0; i < g.nodes.size(); ++i)
      if (!dead[i]) kept.push_back(std::move(g.nodes[i]));
    g.nodes = std::move(kept);
    g.relink();
    g.compact();
  }
  return folded;
}

int remove_identities(ir::Graph& g) {
  int removed = 0;
  std::vector<char> is_output(g.tensors.size(), 0), is_input(g.tensors.size(), 0);
  for (int t : g.outputs) is_output[t] = 1;
  for (int t : g.inputs) is_input[t] = 1;
  std::vector<char> dead(g.nodes.size(), 0);
  std::map<int, int> alias;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    ir::Node& n = g.nodes[i];
    if (n.op_type != "Identity" || !n.has_input(0)) continue;
    int in = n.inputs[0], out = n.outputs[0];
    const ir::Tensor& t = g.tensor(in);
    if (!is_output[out]) {
      alias[out] = in;
    } else if (t.producer >= 0 && t.consumers.size() == 1 && !is_output[in]) {
      for (int& o : g.nodes[t.producer].outputs)
        if (o == in) o = out;
    } else {
      continue;  // an output that is also a graph input or another output: keep the node
    }
    dead[i] = 1;
    ++removed;
  }
  if (!removed) return 0;
  std::vector<ir::Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!dead[i]) kept.push_back(std::move(g.nodes[i]));
  for (ir::Node& n : kept)
    for (int& t : n.inputs)
      while (t >= 0 && alias.count(t)) t = alias[t];
  g.nodes = std::move(kept);
  g.relink();
  g.compact();
  return removed;
}

}  // namespace autotailor
