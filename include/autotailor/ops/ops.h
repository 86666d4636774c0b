// What the executor knows about operators, for the stages that do not run them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "autotailor/ir/graph.h"

namespace autotailor::ops {

std::vector<std::string> supported_ops();  // sorted
bool is_supported(const ir::Node& n);
// Multiply-accumulates of one node at the graph's static shapes (0 for ops without any).
int64_t node_macs(const ir::Graph& g, const ir::Node& n);

}  // namespace autotailor::ops
