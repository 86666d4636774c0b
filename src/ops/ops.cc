#include "autotailor/ops/ops.h"

#include "op_registry.h"

namespace autotailor::ops {

std::vector<std::string> supported_ops() {
  return op_types();
}

bool is_supported(const ir::Node& n) {
  return (n.domain.empty() || n.domain == "ai.onnx") && find_op(n.op_type) != nullptr;
}

int64_t node_macs(const ir::Graph& g, const ir::Node& n) {
  const OpDef* def = is_supported(n) ? find_op(n.op_type) : nullptr;
  if (!def || !def->macs) return 0;
  return def->macs(OpContext{g, n, false, nullptr});
}

}  // namespace autotailor::ops
