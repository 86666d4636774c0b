// Conv: grouped, depthwise, dilated, padded (explicit, asymmetric or auto_pad), 1-3 spatial dims.
// Inference on 2-D float inputs runs on oneDNN with packed weights and fused successors;
// everything else (and training, which needs autograd) runs on at::convolution.
#include "../supernet/channels.h"
#include "dnnl_conv.h"
#include "op_registry.h"
#include "spatial.h"

namespace autotailor::ops {
namespace {

Window conv_window(const OpContext& ctx) {
  const ir::Shape& x = ctx.in(0).shape;
  const ir::Shape& w = ctx.in(1).shape;
  if (x.size() < 3 || w.size() != x.size())
    fail("{}: input {} and weight {} ranks do not fit a convolution", ctx.where(), ir::shape_str(x),
         ir::shape_str(w));
  std::vector<int64_t> kernel(w.begin() + 2, w.end());
  auto ks = ctx.node.attr_ints("kernel_shape", kernel);
  if (ks != kernel) fail("{}: kernel_shape does not match the weight's shape", ctx.where());
  return resolve_window(ctx, kernel, std::vector<int64_t>(x.begin() + 2, x.end()));
}

bool use_dnnl(const OpContext& ctx) {
  return !ctx.training && ctx.in(0).shape.size() == 4 && ctx.in(0).dtype == ir::DType::Float32 &&
         ctx.in(1).dtype == ir::DType::Float32 && dnnl_available();
}

ConvGeometry geometry(const OpContext& ctx) {
  Window w = conv_window(ctx);
  return {w.strides, w.dilations, w.pad_begin, w.pad_end, ctx.node.attr_int("group", 1)};
}

Kernel build_conv(const OpContext& ctx) {
  if (use_dnnl(ctx)) return make_dnnl_conv(geometry(ctx), ctx.has_in(2), {});
  Window w = conv_window(ctx);
  int64_t groups = ctx.node.attr_int("group", 1);
  std::vector<int64_t> pre_pad;
  std::vector<int64_t> padding = w.pad_begin;
  if (!w.symmetric()) {
    pre_pad = torch_pad_arg(w.pad_begin, w.pad_end);
    std::fill(padding.begin(), padding.end(), 0);
  }
  return [w, groups, pre_pad, padding](const Tensors& in, Tensors& out) {
    at::Tensor x = pre_pad.empty() ? in[0] : at::constant_pad_nd(in[0], pre_pad, 0);
    out[0] = at::convolution(x, in[1], in.size() > 2 ? in[2] : at::Tensor(), w.strides, padding,
                             w.dilations, false, std::vector<int64_t>(w.kernel.size(), 0), groups);
  };
}

Kernel build_conv_fused(const OpContext& ctx, const std::vector<PostOp>& post) {
  if (!use_dnnl(ctx)) return {};
  return make_dnnl_conv(geometry(ctx), ctx.has_in(2), post);
}

int64_t conv_macs(const OpContext& ctx) {
  const ir::Shape& wt = ctx.in(1).shape;  // [Cout, Cin/groups, k...]
  const ir::Shape& y = ctx.out(0).shape;  // [N, Cout, spatial...]
  if (y.empty()) return 0;
  return ir::numel(y) * ir::numel(ir::Shape(wt.begin() + 1, wt.end()));
}

const RegisterOps reg{{"Conv", build_conv, conv_macs, nullptr, build_conv_fused}};

// Channels. A plain conv consumes its input's channels (weight axis 1) and produces a new space
// (weight axis 0, bias). A depthwise conv (group == C_in, one input channel per group) passes its
// input's channels through; with a channel multiplier m (C_out = m x C_in) each input channel
// becomes m consecutive outputs (`inner` x m), and the group count follows the width. Any other
// grouped conv keeps its group count and shrinks every group alike: its input is cut into
// `group` chunks whose spaces are unified (so the producer keeps the same channels of every
// chunk), weight axis 1 follows one chunk, and its output is `group` unified chunks.
void conv_channels(supernet::ChannelContext& c) {
  using R = supernet::Binding::Role;
  const supernet::Layout& x = c.in(0);
  if (!c.is_const(1) || x.axis != 1)
    return c.freeze_all("weights computed at run time, or channels not on axis 1");
  const ir::Shape& w = c.in_tensor(1).shape;
  if (w.size() < 3) return c.freeze_all("a weight of rank below 3");
  const int64_t groups = c.node.attr_int("group", 1);
  const int64_t cin = c.in_tensor(0).shape[1], cout = w[0];
  if (groups == 1) {
    c.bind(1, 1, x, R::Consumer);
    supernet::Layout y = c.fresh(cout);
    c.bind(1, 0, y, R::Producer);
    if (c.has_in(2)) c.bind(2, 0, y, R::Producer);
    return c.set_out(0, y);
  }
  if (groups < 1 || cin % groups != 0 || cout % groups != 0 || w[1] * groups != cin)
    return c.freeze_all("grouped convolution with inconsistent shapes");
  if (groups == cin && w[1] == 1 && cin > 1) {
    supernet::Layout y = x;
    if (__builtin_mul_overflow(x.inner, cout / cin, &y.inner))
      return c.freeze_all("depthwise convolution of an impossible size");
    c.bind(1, 0, y, R::Consumer);
    if (c.has_in(2)) c.bind(2, 0, y, R::PassThrough);
    return c.set_out(0, y);
  }
  std::vector<supernet::Layout> in, out;
  if (!c.state.chunks(x, groups, in))
    return c.freeze_all("grouped convolution: its groups cut inside a channel space");
  for (size_t k = 1; k < in.size(); ++k)
    c.state.unify(in[0], in[k], c.why("the groups of a grouped convolution"));
  // The output: one space per group, all shrinking alike.
  for (int64_t k = 1; k < groups; ++k) c.state.cuts[c.node.name].insert(k * cout / groups);
  supernet::Layout y = c.fresh(cout);
  if (!c.state.chunks(y, groups, out)) return c.freeze_all("grouped convolution output");
  for (size_t k = 1; k < out.size(); ++k)
    c.state.unify(out[0], out[k], c.why("the groups of a grouped convolution"));
  c.bind(1, 1, in[0], R::Consumer);
  c.bind(1, 0, y, R::Producer);
  if (c.has_in(2)) c.bind(2, 0, y, R::Producer);
  c.set_out(0, y);
}

const RegisterChannelRules channel_rules{{"Conv", conv_channels}};
}  // namespace
}  // namespace autotailor::ops
