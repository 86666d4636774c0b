// TailorIR -> onnx::ModelProto (internal: the importer reuses it to re-run shape inference).
#pragma once

#include <onnx/onnx_pb.h>

#include "autotailor/ir/graph.h"

namespace autotailor {

// `symbolic_batch`: write a symbolic graph batch as dim_param "N" (for files users get);
// false writes the static 1 the analysis uses (for re-running shape inference).
void to_model_proto(const ir::Graph& g, onnx::ModelProto* m, bool symbolic_batch = true);

}  // namespace autotailor
