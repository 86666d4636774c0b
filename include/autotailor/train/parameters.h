// The trainable state of a graph as LibTorch tensors. Subnets are executed on views of it, so
// gradients of every subnet land in the same shared weights.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "autotailor/exec/executor.h"
#include "autotailor/ir/graph.h"

namespace autotailor::train {

class ParameterStore {
 public:
  // Trainable: the float weights and biases of Conv, Gemm, MatMul, PRelu and the scale and bias
  // of BatchNormalization, InstanceNormalization and LayerNormalization. Buffers: BatchNorm
  // running statistics. Other constants (shapes, HardSwish's 1/6...) stay as they are.
  explicit ParameterStore(const ir::Graph& g);

  // Binds the constants of `ex`'s graph that share data with the store's graph (a graph
  // derived from it) to views of the store's tensors. Returns how many it bound.
  int bind(exec::Executor& ex) const;

  // Weights with two or more dimensions (weight decay applies), and the rest (biases, norms).
  std::vector<at::Tensor> weights() const;
  std::vector<at::Tensor> others() const;
  // Every tensor (parameters and buffers) by its graph name, for checkpoints.
  std::map<std::string, at::Tensor> named() const;
  // `g` (the store's graph or a copy) with the store's current values in its constants.
  std::shared_ptr<ir::Graph> write_back(const ir::Graph& g) const;
  size_t parameter_count() const;

 private:
  struct Entry {
    std::string name;
    at::Tensor value;
    bool trainable = false;
  };
  std::unordered_map<const ir::ConstData*, Entry> entries_;
  std::vector<const ir::ConstData*> order_;  // graph order, for stable optimizer state
};

}  // namespace autotailor::train
