// Runs a TailorIR graph on LibTorch (CPU). Kernels are built once per node; weights are the
// graph's constant bytes, wrapped without copying; intermediates are freed after their last
// use. Any batch size runs, also when the file says 1.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <vector>

#include "autotailor/ir/graph.h"

namespace autotailor::exec {

// How BatchNormalization nodes behave; read at every run, so one executor can switch between
// fine-tuning, statistics collection and inference.
struct BatchNormMode {
  enum class Kind {
    Inference,  // normalise with the running statistics (the ONNX inference form)
    Train,      // normalise with the batch's statistics and update the running ones
    Measure,    // pass the input through unchanged and update the running statistics
  };
  Kind kind = Kind::Inference;
  // running = (1 - momentum) * running + momentum * batch (PyTorch's convention; 1/(k+1) for
  // the k-th batch gives the plain average over batches). Variance updates are unbiased.
  double momentum = 0.1;
};

struct ExecOptions {
  // Autograd may run through the graph: kernels avoid in-place updates of their inputs.
  bool training = false;
  // Null: inference form. Running statistics are updated in place in the bound constants.
  std::shared_ptr<const BatchNormMode> batchnorm;
};

class Executor {
 public:
  explicit Executor(std::shared_ptr<const ir::Graph> graph, ExecOptions options = {});
  ~Executor();
  Executor(Executor&&) noexcept;
  Executor& operator=(Executor&&) noexcept;

  // Inputs in the order of graph().inputs; outputs in the order of graph().outputs. Checks
  // count, type and every non-batch dimension, naming the input that does not fit.
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs);

  const ir::Graph& graph() const { return *graph_; }
  // Kernels after fusion: fewer than nodes when element-wise ops folded into convolutions.
  size_t step_count() const;

  // The tensor a constant is bound to (by tensor id). A later stage swaps in views of the
  // shared weights here to run a subnet without copying them.
  // What runs, step by step: each step's nodes (the head, then element-wise successors fused
  // into it) and the tensors it reads and writes. Latency keys are built from this.
  struct StepInfo {
    std::vector<int> nodes;
    std::vector<int> in, out;
  };
  std::vector<StepInfo> plan() const;

  // While set, every run() writes each step's wall time in milliseconds into *ms (one entry
  // per step, in plan() order): steps timed in context, inside a whole network. Null stops.
  void set_step_timer(std::vector<double>* ms) { step_ms_ = ms; }

  const at::Tensor& constant(int tensor_id) const;
  void bind_constant(int tensor_id, at::Tensor value);

 private:
  struct Step;
  std::shared_ptr<const ir::Graph> graph_;
  ExecOptions options_;
  std::vector<Step> steps_;
  std::vector<at::Tensor> slots_;  // one per tensor id; constants stay bound
  std::vector<double>* step_ms_ = nullptr;
};

// A tensor viewing a constant's bytes; keeps them alive.
at::Tensor tensor_from_const(const std::shared_ptr<const ir::ConstData>& c);
// A view of `full` keeping, per axis, the listed indices (ir::Tensor::select): narrow() where
// they form a contiguous run (no copy), index_select() otherwise.
at::Tensor select_view(const at::Tensor& full, const std::vector<std::vector<int64_t>>& select);
// A ConstData holding a copy of a tensor's contents.
std::shared_ptr<const ir::ConstData> const_from_tensor(const at::Tensor& t);

}  // namespace autotailor::exec
