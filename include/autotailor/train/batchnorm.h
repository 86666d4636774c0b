// BatchNorm for fine-tuning. ONNX exports in eval mode fold BatchNorm into the Conv before it;
// shrinking a subnet shifts the statistics downstream, so fine-tuning and recalibration need
// BatchNorm back. It is folded again at export (fold_batchnorm).
#pragma once

#include <string>
#include <vector>

#include "autotailor/ir/graph.h"

namespace autotailor::train {

// Inserts a BatchNormalization after every Conv that lost its own (rule in docs/finetune.md):
// float constant weights, not on pooled features (the 1x1 convs of a squeeze-excitation or a
// head after global pooling, whose output has one spatial position), not a graph output, no
// BatchNormalization among its consumers. The Conv writes a new tensor; the BatchNorm writes the Conv's old output, so its
// consumers and the graph's outputs keep their names. Placeholders: mean 0, variance 1, scale
// 1, bias 0; make_identity() sets them from measured statistics. Returns the new nodes' names.
std::vector<std::string> insert_batchnorm(ir::Graph& g);

// For the named BatchNorm nodes, whose running mean m and variance v hold measured statistics
// of their input: scale = sqrt(v + eps), bias = m, so that the inference form is the identity
// and the training form (batch statistics close to m, v) nearly so.
void make_identity(ir::Graph& g, const std::vector<std::string>& batchnorm_nodes);

// Names of the BatchNormalization nodes of a graph.
std::vector<std::string> batchnorm_nodes(const ir::Graph& g);

}  // namespace autotailor::train
