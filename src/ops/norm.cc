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

// The optional Mean and InvStdDev outputs keep the normalized dimensions as ones, as ATen's
// native_layer_norm statistics do; they are computed in the stash type (float by default).
Kernel build_layernorm(const OpContext& ctx) {
  int64_t rank = static_cast<int64_t>(ctx.in(0).shape.size());
  int64_t axis = normalize_axis(ctx.node.attr_int("axis", -1), rank, ctx);
  double eps = ctx.node.attr_float("epsilon", 1e-5f);
  bool stats = ctx.node.has_output(1) || ctx.node.has_output(2);
  at::ScalarType stash = to_scalar_type(static_cast<ir::DType>(ctx.node.attr_int("stash_type", 1)));
  return [axis, eps, stats, stash](const Tensors& in, Tensors& out) {
    auto sizes = in[0].sizes().slice(axis);
    at::Tensor bias = in.size() > 2 ? in[2] : at::Tensor();
    if (!stats) {
      out[0] = at::layer_norm(in[0], sizes, in[1], bias, eps);
      return;
    }
    at::ScalarType type = in[0].scalar_type();
    auto [y, mean, rstd] = at::native_layer_norm(
        in[0].to(stash), sizes, in[1].to(stash), bias.defined() ? bias.to(stash) : bias, eps);
    out[0] = y.to(type);
    if (out.size() > 1) out[1] = mean;
    if (out.size() > 2) out[2] = rstd;
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
