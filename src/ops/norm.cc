// Normalization: BatchNormalization (inference form), InstanceNormalization, LayerNormalization.
#include "op_registry.h"

namespace autotailor::ops {
namespace {

Kernel build_batchnorm(const OpContext& ctx) {
  if (ctx.node.attr_int("training_mode", 0) != 0 || ctx.node.has_output(1))
    unsupported("{}: training-mode BatchNormalization is not supported", ctx.where());
  double eps = ctx.node.attr_float("epsilon", 1e-5f);
  return [eps](const Tensors& in, Tensors& out) {
    out[0] = at::batch_norm(in[0], in[1], in[2], in[3], in[4], false, 0.0, eps, true);
  };
}

Kernel build_instancenorm(const OpContext& ctx) {
  double eps = ctx.node.attr_float("epsilon", 1e-5f);
  return [eps](const Tensors& in, Tensors& out) {
    out[0] = at::instance_norm(in[0], in[1], in[2], {}, {}, true, 0.0, eps, true);
  };
}

Kernel build_layernorm(const OpContext& ctx) {
  if (ctx.node.has_output(1) || ctx.node.has_output(2))
    unsupported("{}: the Mean and InvStdDev outputs are not supported", ctx.where());
  int64_t rank = static_cast<int64_t>(ctx.in(0).shape.size());
  int64_t axis = normalize_axis(ctx.node.attr_int("axis", -1), rank, ctx);
  double eps = ctx.node.attr_float("epsilon", 1e-5f);
  return [axis, eps](const Tensors& in, Tensors& out) {
    auto sizes = in[0].sizes().slice(axis);
    out[0] = at::layer_norm(in[0], sizes, in[1], in.size() > 2 ? in[2] : at::Tensor(), eps);
  };
}

int64_t elementwise_macs(const OpContext& ctx) {
  return ir::numel(ctx.out(0).shape);
}

const RegisterOps reg{
    {"BatchNormalization", build_batchnorm, elementwise_macs},
    {"InstanceNormalization", build_instancenorm, elementwise_macs},
    {"LayerNormalization", build_layernorm, elementwise_macs},
};

}  // namespace
}  // namespace autotailor::ops
