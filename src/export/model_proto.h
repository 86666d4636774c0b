// TailorIR -> onnx::ModelProto (internal: the importer reuses it to re-run shape inference).
#pragma once

#include <onnx/onnx_pb.h>

#include "autotailor/ir/graph.h"

namespace autotailor {

void to_model_proto(const ir::Graph& g, onnx::ModelProto* m);

}  // namespace autotailor
