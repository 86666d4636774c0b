// Re-runs libonnx's shape inference over a graph whose shapes changed (a subnet, another input
// size). Constants are described by their (possibly selected) shapes; only small integer ones
// (shape operands) travel with their data, so this costs no weight copies.
#pragma once

#include <string>

#include "autotailor/ir/graph.h"

namespace autotailor {

// Updates every computed tensor's shape; false (and a one-line reason) when inference fails or
// leaves a shape unknown.
bool infer_graph_shapes(ir::Graph& g, std::string* error);

}  // namespace autotailor
