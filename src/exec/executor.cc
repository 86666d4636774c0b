#include "autotailor/exec/executor.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cstring>

#include "../ops/op_registry.h"
#include "autotailor/common/error.h"

namespace autotailor::exec {

struct Executor::Step {
  ops::Kernel kernel;
  const ir::Node* node;
  std::vector<int> release;  // tensor ids whose last use is this step
};

at::Tensor tensor_from_const(const std::shared_ptr<const ir::ConstData>& c) {
  return ops::tensor_from_const(c);
}

std::shared_ptr<const ir::ConstData> const_from_tensor(const at::Tensor& t) {
  at::Tensor c = t.detach().contiguous();
  ir::DType type = ops::from_scalar_type(c.scalar_type());
  std::vector<std::byte> bytes(c.numel() * c.element_size());
  if (!bytes.empty()) std::memcpy(bytes.data(), c.data_ptr(), bytes.size());
  return ir::ConstData::make(type, ir::Shape(c.sizes().begin(), c.sizes().end()), std::move(bytes));
}

Executor::Executor(std::shared_ptr<const ir::Graph> graph, ExecOptions options)
    : graph_(std::move(graph)) {
  const ir::Graph& g = *graph_;
  slots_.resize(g.tensors.size());
  for (size_t i = 0; i < g.tensors.size(); ++i)
    if (g.tensors[i].is_const()) slots_[i] = tensor_from_const(g.tensors[i].value);

  std::vector<int> last_use(g.tensors.size(), -1);
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (int t : g.nodes[i].inputs)
      if (t >= 0) last_use[t] = static_cast<int>(i);
  std::vector<char> keep(g.tensors.size(), 0);
  for (int t : g.outputs) keep[t] = 1;
  for (size_t i = 0; i < g.tensors.size(); ++i)
    if (g.tensors[i].is_const()) keep[i] = 1;

  steps_.reserve(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& n = g.nodes[i];
    const ops::OpDef* def =
        n.domain.empty() || n.domain == "ai.onnx" ? ops::find_op(n.op_type) : nullptr;
    if (!def || !def->build)
      unsupported("{}: operator {}{} (opset {}) is not supported", g.describe(n),
                  n.domain.empty() ? "" : n.domain + ".", n.op_type, g.opset());
    ops::OpContext ctx{g, n, options.training};
    Step s{def->build(ctx), &n, {}};
    for (int t : n.inputs)
      if (t >= 0 && !keep[t] && last_use[t] == static_cast<int>(i) &&
          std::find(s.release.begin(), s.release.end(), t) == s.release.end())
        s.release.push_back(t);
    // Outputs nobody reads are dropped at once.
    for (int t : n.outputs)
      if (t >= 0 && !keep[t] && last_use[t] < 0) s.release.push_back(t);
    steps_.push_back(std::move(s));
  }
}

Executor::~Executor() = default;
Executor::Executor(Executor&&) noexcept = default;
Executor& Executor::operator=(Executor&&) noexcept = default;

const at::Tensor& Executor::constant(int tensor_id) const {
  return slots_.at(tensor_id);
}

void Executor::bind_constant(int tensor_id, at::Tensor value) {
  if (!graph_->tensor(tensor_id).is_const())
    fail("tensor '{}' is not a constant", graph_->tensor(tensor_id).name);
  slots_.at(tensor_id) = std::move(value);
}

std::vector<at::Tensor> Executor::run(const std::vector<at::Tensor>& inputs) {
  const ir::Graph& g = *graph_;
  if (inputs.size() != g.inputs.size())
    fail("{} takes {} input(s), got {}", g.source, g.inputs.size(), inputs.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    const ir::Tensor& t = g.tensor(g.inputs[k]);
    const at::Tensor& x = inputs[k];
    auto want = ops::to_scalar_type(t.dtype);
    if (x.scalar_type() != want)
      fail("input '{}' must be {}, got {}", t.name, ir::dtype_name(t.dtype),
           at::toString(x.scalar_type()));
    bool ok = static_cast<size_t>(x.dim()) == t.shape.size();
    for (size_t d = ok ? 1 : 0; ok && d < t.shape.size(); ++d) ok = x.size(d) == t.shape[d];
    if (ok && !t.shape.empty() && t.shape[0] != 1 && !g.symbolic_batch)
      ok = x.size(0) == t.shape[0];
    if (!ok)
      fail("input '{}' must have shape {} (any batch size), got {}", t.name, ir::shape_str(t.shape),
           ir::shape_str(ir::Shape(x.sizes().begin(), x.sizes().end())));
    slots_[g.inputs[k]] = x;
  }

  ops::Tensors in, out;
  for (Step& s : steps_) {
    const ir::Node& n = *s.node;
    in.resize(n.inputs.size());
    for (size_t k = 0; k < n.inputs.size(); ++k)
      in[k] = n.inputs[k] >= 0 ? slots_[n.inputs[k]] : at::Tensor();
    out.assign(n.outputs.size(), at::Tensor());
    try {
      s.kernel(in, out);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      // LibTorch's messages are long and multi-line: keep the first line.
      std::string msg = e.what();
      msg = msg.substr(0, msg.find('\n'));
      fail("{}: {}", g.describe(n), msg);
    }
    for (size_t k = 0; k < n.outputs.size(); ++k)
      if (n.outputs[k] >= 0) slots_[n.outputs[k]] = std::move(out[k]);
    for (int t : s.release) slots_[t].reset();
  }
  in.clear();
  std::vector<at::Tensor> result;
  for (int t : g.outputs) result.push_back(slots_[t]);
  // Do not hold on to the caller's inputs or the outputs between runs.
  for (int t : g.inputs) slots_[t].reset();
  for (int t : g.outputs)
    if (!g.tensor(t).is_const()) slots_[t].reset();
  return result;
}

}  // namespace autotailor::exec
