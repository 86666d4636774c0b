// Guards around libonnx 1.12's shape inference, which trusts its input in places: some
// inference functions index shapes, attributes and tensor data without checking them, so a
// malformed model can crash the importer (found by fuzzing, and by reading libonnx 1.12's
// inference functions against the fixes later ONNX releases made; docs/hardening.md lists
// them). Both guards refuse such a model with a message naming the node or tensor.
#pragma once

#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>

#include <string>

namespace autotailor::import_detail {

// Static checks of what libonnx reads as data before any node runs: every tensor held in the
// model (initializers, TENSOR attributes such as Constant's value, in the graph, its subgraphs
// and local functions) has non-negative dims and exactly the data they imply (libonnx 1.12
// copies raw_data by its length into a vector sized by the element count); no sparse tensors;
// no graph input or initializer named "" (it would type every absent optional input); no local
// function that calls itself. Throws autotailor::Error.
void check_model_data(const onnx::ModelProto& m, const std::string& source);

// A schema registry that hands out libonnx's schemas with their inference functions wrapped:
// before the original runs, the live inference context (the real input types and shapes,
// intermediate tensors included) is checked against what the original assumes; a node that
// does not fit is refused with onnx::InferenceError, which InferShapes reports with the node's
// op type and name. Data propagation functions that could read past their data are skipped
// (only less is known). Thread-safe; one instance serves every import.
const onnx::ISchemaRegistry* guarded_schemas();

}  // namespace autotailor::import_detail
