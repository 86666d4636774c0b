// ONNX -> TailorIR. Parses the file, runs libonnx's checker and shape inference, folds
// constant subgraphs (Identity, Constant, static Shape/Gather/Unsqueeze/Concat chains, ...)
// and keeps initializers as shared weights.
#pragma once

#include <memory>
#include <string>

#include "autotailor/ir/graph.h"

namespace autotailor {

// The largest tensor a model may hold or compute (2^32 elements: 16 GiB of float32).
constexpr int64_t kMaxTensorElements = int64_t{1} << 32;

struct ImportOptions {
  bool fold_constants = true;
  // A fixed first dimension of every input (and output) is taken as the batch, like a
  // symbolic one: for training and search, which run other batch sizes. A graph that depends
  // on the fixed value (a Reshape to [4, -1]) then fails shape inference.
  bool free_batch = false;
};

// Throws Error with a one-line reason naming the file (and node) on anything it cannot take;
// Unsupported for well-formed models whose operators the executor lacks is raised later, by
// the executor.
std::shared_ptr<ir::Graph> import_onnx(const std::string& path, const ImportOptions& opt = {});

// Same, from bytes already in memory (fuzzing, tests). `source` names it in messages; external
// data files are looked up next to it.
std::shared_ptr<ir::Graph> import_onnx_bytes(const std::string& bytes, const std::string& source,
                                             const ImportOptions& opt = {});

// Replaces every node whose inputs are all constant by its computed outputs, and aliases
// Identity/Dropout nodes away. Returns the number of nodes removed.
int fold_constants(ir::Graph& g);

}  // namespace autotailor
