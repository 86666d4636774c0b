// Normalization: BatchNormalization (inference form), InstanceNormalization, LayerNormalization,
// LRN, MeanVarianceNormalization.
#include "../supernet/channels.h"
#include "op_registry.h"

namespace autotailor::ops {
namespace {

Kernel build_batchnorm(const OpContext& ctx) {
  if (ctx.node.attr_int("training_mode", 0) != 0 || ctx.node.has_output(1))
    unsupported("{}: training-mode BatchNormalization is not supported", ctx.where());
  double eps = ctx.node.attr_float("epsilon", 1e-5f);
  std::shared_ptr<const exec::BatchNormMode> mode = ctx.batchnorm;
  return [eps, mode](const Tensors& in, Tensors& out) {
    using Kind = exec::BatchNormMode::Kind;
    Kind kind = mode ? mode->kind : Kind::Inference;
    if (kind == Kind::Inference) {
      out[0] = at::batch_norm(in[0], in[1], in[2], in[3], in[4], false, 0.0, eps, true);
    } else if (kind == Kind::Train) {
      // Updates in[3] and in[4] (the bound running statistics) in place.
      out[0] = at::batch_norm(in[0], in[1], in[2], in[3], in[4], true, mode->momentum, eps, true);
    } else {
      at::NoGradGuard no_grad;
      std::vector<int64_t> dims{0};
      for (int64_t d = 2; d < in[0].dim(); ++d) dims.push_back(d);
      auto [var, mean] = at::var_mean(in[0], dims, /*unbiased=*/true);
      in[3].mul_(1.0 - mode->momentum).add_(mean, mode->momentum);
      in[4].mul_(1.0 - mode->momentum).add_(var, mode->momentum);
      out[0] = in[0];
    }
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
    auto [y, mean, rstd] = at::native_layer_norm(in[0].to(stash), sizes, in[1].to(stash),
                                                 bias.defined() ? bias.to(stash) : bias, eps);
    out[0] = y.to(type);
    if (out.size() > 1) out[1] = mean;
    if (out.size() > 2) out[2] = rstd;
  };
}

// LRN: each value divided by (bias + alpha/size * sum of squares over `size` neighbouring
// channels)^beta; the window reaches floor((size-1)/2) channels back, ceil((size-1)/2) ahead.
Kernel build_lrn(const OpContext& ctx) {
  double alpha = ctx.node.attr_float("alpha", 1e-4f), beta = ctx.node.attr_float("beta", 0.75f);
  double bias = ctx.node.attr_float("bias", 1.0f);
  int64_t size = ctx.node.attr_int("size", 0);
  if (size <= 0) fail("{}: LRN needs a positive size", ctx.where());
  if (ctx.in(0).shape.size() < 3) fail("{}: LRN takes inputs of rank 3 or more", ctx.where());
  return [=](const Tensors& in, Tensors& out) {
    const at::Tensor& x = in[0];
    // Squares as [N, 1, C, rest]: a (size x 1) sum pool runs along the channels.
    at::Tensor sq = (x * x).reshape({x.size(0), 1, x.size(1), -1});
    sq = at::constant_pad_nd(sq, {0, 0, (size - 1) / 2, size / 2}, 0);
    at::Tensor sum = at::avg_pool2d(sq, {size, 1}, {1, 1}) * static_cast<double>(size);
    out[0] = x / at::pow(bias + (alpha / size) * sum.reshape(x.sizes()), beta);
  };
}

// MeanVarianceNormalization, as ONNX defines it: (x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9).
Kernel build_mvn(const OpContext& ctx) {
  int64_t rank = static_cast<int64_t>(ctx.in(0).shape.size());
  std::vector<int64_t> axes = ctx.node.attr_ints("axes", {0, 2, 3});
  for (int64_t& a : axes) a = normalize_axis(a, rank, ctx);
  return [axes](const Tensors& in, Tensors& out) {
    const at::Tensor& x = in[0];
    at::Tensor mean = at::mean(x, axes, true);
    at::Tensor var = at::mean(x * x, axes, true) - mean * mean;
    out[0] = (x - mean) / (at::sqrt(var) + 1e-9);
  };
}

int64_t elementwise_macs(const OpContext& ctx) {
  return ir::numel(ctx.out(0).shape);
}

const RegisterOps reg{
    {"BatchNormalization", build_batchnorm, elementwise_macs},
    {"InstanceNormalization", build_instancenorm, elementwise_macs},
    {"LayerNormalization", build_layernorm, elementwise_macs},
    {"LRN", build_lrn, elementwise_macs},
    {"MeanVarianceNormalization", build_mvn, elementwise_macs},
};

// Channels: per-channel parameters follow the input's channels.
void per_channel_params(supernet::ChannelContext& c) {
  const supernet::Layout& x = c.in(0);
  if (x.axis != 1) return c.freeze_all("channels not on axis 1");
  for (size_t k = 1; k < c.node.inputs.size(); ++k)
    c.bind(k, 0, x, supernet::Binding::Role::PassThrough);
  c.pass_through();
}

const RegisterChannelRules channel_rules{{"BatchNormalization", per_channel_params},
                                         {"InstanceNormalization", per_channel_params}};
}  // namespace
}  // namespace autotailor::ops
