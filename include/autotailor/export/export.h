// Writing a subnet as a plain ONNX file any runtime loads.
#pragma once

#include <string>

#include "autotailor/ir/graph.h"
#include "autotailor/supernet/supernet.h"

namespace autotailor {

// Folds inference BatchNormalization nodes into the Conv that feeds them alone.
// Returns how many were folded. Constants must be materialized (no selections).
int fold_batchnorm(ir::Graph& g);

// Removes Identity nodes, giving their output name to the producer of their input.
int remove_identities(ir::Graph& g);

// Derives the subnet, copies its selected weights out, folds BatchNorm, drops Identity nodes,
// and writes it with the model's opset. The bytes are read back through the importer (ONNX
// checker and shape inference) before the file is renamed into place.
void export_subnet(const supernet::Supernet& s, const supernet::SubnetConfig& c,
                   const std::string& path);
// The same for a subnet graph already derived (and perhaps BatchNorm-recalibrated).
void export_graph(const ir::Graph& derived, const std::string& model_name, const std::string& path);

}  // namespace autotailor
