#include "autotailor/exec/executor.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cstring>
#include <optional>

#include "../ops/op_registry.h"
#include "autotailor/common/error.h"

namespace autotailor::exec {

struct Executor::Step {
  ops::Kernel kernel;
  const ir::Node* node;      // the node the step computes (first of a fused group)
  std::vector<int> nodes;    // node indices: the head, then the fused successors
  std::vector<int> in, out;  // tensor ids
  std::vector<int> release;  // tensor ids whose last use is this step
};

at::Tensor tensor_from_const(const std::shared_ptr<const ir::ConstData>& c) {
  return ops::tensor_from_const(c);
}

at::Tensor select_view(const at::Tensor& full, const std::vector<std::vector<int64_t>>& select) {
  at::Tensor t = full;
  for (size_t a = 0; a < select.size(); ++a) {
    const auto& idx = select[a];
    if (idx.empty()) continue;
    bool run = true;
    for (size_t i = 1; run && i < idx.size(); ++i) run = idx[i] == idx[0] + static_cast<int64_t>(i);
    int64_t axis = static_cast<int64_t>(a);
    t = run ? t.narrow(axis, idx[0], static_cast<int64_t>(idx.size()))
            : t.index_select(axis, at::tensor(idx, at::kLong));
  }
  return t;
}

std::shared_ptr<const ir::ConstData> const_from_tensor(const at::Tensor& t) {
  at::Tensor c = t.detach().contiguous();
  ir::DType type = ops::from_scalar_type(c.scalar_type());
  std::vector<std::byte> bytes(c.numel() * c.element_size());
  if (!bytes.empty()) std::memcpy(bytes.data(), c.data_ptr(), bytes.size());
  return ir::ConstData::make(type, ir::Shape(c.sizes().begin(), c.sizes().end()), std::move(bytes));
}

namespace {

const ops::OpDef* op_def(const ir::Graph& g, const ir::Node& n) {
  const ops::OpDef* def =
      n.domain.empty() || n.domain == "ai.onnx" ? ops::find_op(n.op_type) : nullptr;
  if (!def || !def->build)
    unsupported("{}: operator {}{} (opset {}) is not supported", g.describe(n),
                n.domain.empty() ? "" : n.domain + ".", n.op_type, g.opset());
  return def;
}

// The element-wise successors that fold into node i's kernel: a chain of single-consumer
// tensors through ops that offer a post-op form, at most one of them an Add. The other addend
// of that Add must be computed before node i runs. At most kMaxPostOps of them: oneDNN takes
// 32 post-op entries and a post-op here takes up to two (HardSigmoid: linear, then clip); the
// rest of a longer chain runs as separate steps.
constexpr size_t kMaxPostOps = 15;
struct FusedChain {
  std::vector<ops::PostOp> post;
  std::vector<int> nodes;    // absorbed node indices
  std::vector<int> addends;  // extra kernel inputs (one per Sum)
  int out = -1;              // the tensor the chain finally produces
};

FusedChain find_chain(const ir::Graph& g, size_t i, const std::vector<char>& is_output) {
  FusedChain c;
  const ir::Node& n = g.nodes[i];
  if (n.outputs.size() != 1 || n.outputs[0] < 0) return c;
  int cur = n.outputs[0];
  bool has_sum = false;
  for (;;) {
    const ir::Tensor& t = g.tensor(cur);
    if (t.consumers.size() != 1 || is_output[cur] || c.post.size() >= kMaxPostOps) break;
    const ir::Node& m = g.nodes[t.consumers[0]];
    const ops::OpDef* dm = m.domain.empty() ? ops::find_op(m.op_type) : nullptr;
    if (!dm || !dm->as_post_op || m.outputs.size() != 1 || m.outputs[0] < 0) break;
    std::optional<ops::PostOp> p = dm->as_post_op(ops::OpContext{g, m, false, nullptr});
    if (!p) break;
    if (p->kind == ops::PostOp::Kind::Sum) {
      int other = m.inputs[0] == cur ? m.inputs[1] : m.inputs[0];
      const ir::Tensor& o = g.tensor(other);
      if (has_sum || other == cur || o.producer >= static_cast<int>(i)) break;
      p->inplace = ops::owns_memory(g, other) && o.consumers.size() == 1 && !is_output[other];
      c.addends.push_back(other);
      has_sum = true;
    }
    c.post.push_back(*p);
    c.nodes.push_back(t.consumers[0]);
    cur = m.outputs[0];
  }
  c.out = cur;
  return c;
}

}  // namespace

Executor::Executor(std::shared_ptr<const ir::Graph> graph, ExecOptions options)
    : graph_(std::move(graph)), options_(options) {
  const ir::Graph& g = *graph_;
  slots_.resize(g.tensors.size());
  for (size_t i = 0; i < g.tensors.size(); ++i)
    if (g.tensors[i].is_const())
      slots_[i] = select_view(tensor_from_const(g.tensors[i].value), g.tensors[i].select);
  std::vector<char> is_output(g.tensors.size(), 0);
  for (int t : g.outputs) is_output[t] = 1;

  std::vector<char> absorbed(g.nodes.size(), 0);
  steps_.reserve(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (absorbed[i]) continue;
    const ir::Node& n = g.nodes[i];
    const ops::OpDef* def = op_def(g, n);
    ops::OpContext ctx{g, n, options.training, options.batchnorm};
    Step s{{}, &n, {static_cast<int>(i)}, n.inputs, n.outputs, {}};
    if (!options.training && def->build_fused) {
      FusedChain chain = find_chain(g, i, is_output);
      if (!chain.post.empty()) {
        if (ops::Kernel k = def->build_fused(ctx, chain.post)) {
          s.kernel = std::move(k);
          s.in.insert(s.in.end(), chain.addends.begin(), chain.addends.end());
          s.out = {chain.out};
          for (int j : chain.nodes) absorbed[j] = 1;
          s.nodes.insert(s.nodes.end(), chain.nodes.begin(), chain.nodes.end());
        }
      }
    }
    if (!s.kernel) s.kernel = def->build(ctx);
    steps_.push_back(std::move(s));
  }

  // Free each intermediate after the last step that reads it; drop outputs nobody reads.
  std::vector<int> last_use(g.tensors.size(), -1);
  for (size_t k = 0; k < steps_.size(); ++k)
    for (int t : steps_[k].in)
      if (t >= 0) last_use[t] = static_cast<int>(k);
  for (size_t k = 0; k < steps_.size(); ++k) {
    Step& s = steps_[k];
    auto keep = [&](int t) { return is_output[t] || g.tensor(t).is_const(); };
    for (int t : s.in)
      if (t >= 0 && !keep(t) && last_use[t] == static_cast<int>(k) &&
          std::find(s.release.begin(), s.release.end(), t) == s.release.end())
        s.release.push_back(t);
    for (int t : s.out)
      if (t >= 0 && !keep(t) && last_use[t] < 0) s.release.push_back(t);
  }
}

Executor::~Executor() = default;
size_t Executor::step_count() const {
  return steps_.size();
}

std::vector<Executor::StepInfo> Executor::plan() const {
  std::vector<StepInfo> p;
  for (const Step& s : steps_) p.push_back({s.nodes, s.in, s.out});
  return p;
}
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

  std::optional<c10::InferenceMode> inference;
  if (!options_.training) inference.emplace();
  ops::Tensors in, out;
  if (step_ms_) step_ms_->assign(steps_.size(), 0.0);
  for (size_t si = 0; si < steps_.size(); ++si) {
    Step& s = steps_[si];
    auto started =
        step_ms_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    in.resize(s.in.size());
    for (size_t k = 0; k < s.in.size(); ++k) in[k] = s.in[k] >= 0 ? slots_[s.in[k]] : at::Tensor();
    out.assign(s.out.size(), at::Tensor());
    try {
      s.kernel(in, out);
    } catch (const Unsupported& e) {
      throw Unsupported(fmt::format("{}: {}", g.describe(*s.node), e.what()));
    } catch (const Error& e) {
      fail("{}: {}", g.describe(*s.node), e.what());
    } catch (const std::exception& e) {
      // LibTorch's messages are long and multi-line: keep the first line.
      std::string msg = e.what();
      fail("{}: {}", g.describe(*s.node), msg.substr(0, msg.find('\n')));
    }
    for (size_t k = 0; k < s.out.size(); ++k)
      if (s.out[k] >= 0) slots_[s.out[k]] = std::move(out[k]);
    for (int t : s.release) slots_[t].reset();
    if (step_ms_)
      (*step_ms_)[si] =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
              .count();
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
