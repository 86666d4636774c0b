// Constant folding through the executor's own kernels: whatever the executor can compute, the
// importer can fold, with the same numerics.
#include <c10/core/InferenceMode.h>

#include <numeric>
#include <optional>

#include "../ops/op_registry.h"
#include "autotailor/exec/executor.h"
#include "autotailor/import/onnx_import.h"

namespace autotailor {

namespace {

bool is_graph_output(const ir::Graph& g, int id) {
  return std::find(g.outputs.begin(), g.outputs.end(), id) != g.outputs.end();
}

// Shape and Size of a tensor whose static shape is known. A symbolic batch is frozen at 1 in
// the result; the executor's Reshape lets a leading 1 follow the real batch (shape_ops.cc).
std::optional<at::Tensor> fold_shape_query(const ir::Graph& g, const ir::Node& n) {
  if (n.op_type != "Shape" && n.op_type != "Size") return std::nullopt;
  const ir::Tensor& x = g.tensor(n.inputs.at(0));
  if (!x.shape_known) return std::nullopt;
  if (n.op_type == "Size") return at::scalar_tensor(ir::numel(x.shape), at::kLong);
  int64_t rank = static_cast<int64_t>(x.shape.size());
  auto clampi = [rank](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + rank : v, 0, rank); };
  int64_t s = clampi(n.attr_int("start", 0));
  int64_t e = n.attr("end") ? clampi(n.attr_int("end", rank)) : rank;
  std::vector<int64_t> dims(x.shape.begin() + s, x.shape.begin() + std::max(s, e));
  return at::tensor(dims, at::kLong).reshape({static_cast<int64_t>(dims.size())});
}

}  // namespace

int fold_constants(ir::Graph& g) {
  c10::InferenceMode guard;
  g.relink();
  std::vector<int> alias(g.tensors.size());
  std::iota(alias.begin(), alias.end(), 0);
  std::vector<char> dead(g.nodes.size(), 0);
  int removed = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    ir::Node& n = g.nodes[i];
    for (int& in : n.inputs)
      if (in >= 0) in = alias[in];
    if (!n.domain.empty()) continue;

    // Identity (and inference-mode Dropout) forward their input: alias the output away.
    bool passthrough =
        n.op_type == "Identity" || (n.op_type == "Dropout" && !n.has_output(1) && !n.has_input(2));
    if (passthrough && n.has_input(0) && !is_graph_output(g, n.outputs[0])) {
      alias[n.outputs[0]] = n.inputs[0];
      dead[i] = 1;
      ++removed;
      continue;
    }

    std::optional<at::Tensor> shape_value = fold_shape_query(g, n);
    bool all_const = true;
    for (int in : n.inputs)
      if (in >= 0 && !g.tensor(in).is_const()) all_const = false;
    if (!shape_value && !all_const) continue;
    const ops::OpDef* def = ops::find_op(n.op_type);
    if (!shape_value && (!def || !def->build)) continue;

    ops::Tensors outs(n.outputs.size());
    if (shape_value) {
      outs[0] = *shape_value;
    } else {
      ops::Tensors ins;
      for (int in : n.inputs)
        ins.push_back(in >= 0 ? exec::tensor_from_const(g.tensor(in).value) : at::Tensor());
      try {
        ops::OpContext ctx{g, n, false, nullptr};
        def->build(ctx)(ins, outs);
      } catch (const Unsupported&) {
        continue;  // left for the executor, which reports it when it is run
      } catch (const Error&) {
        throw;
      } catch (const std::exception& e) {
        std::string msg = e.what();
        fail("{}: cannot compute its constant value: {}", g.describe(n),
             msg.substr(0, msg.find('\n')));
      }
    }
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      if (n.outputs[k] < 0 || !outs[k].defined()) continue;
      ir::Tensor& t = g.tensor(n.outputs[k]);
      t.value = exec::const_from_tensor(outs[k]);
      t.dtype = t.value->dtype;
      t.shape = t.value->shape;
      t.shape_known = true;
    }
    dead[i] = 1;
    ++removed;
  }
  for (int& o : g.outputs) o = alias[o];
  std::vector<ir::Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!dead[i]) kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
  g.relink();
  return removed;
}

}  // namespace autotailor
