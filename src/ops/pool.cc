// Pooling and reductions: MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, Reduce*,
// ArgMax/ArgMin, TopK, CumSum.
#include <limits>

#include "../supernet/channels.h"
#include "op_registry.h"
#include "spatial.h"

namespace autotailor::ops {
namespace {

struct PoolPlan {
  Window w;
  bool ceil_mode = false;
  std::vector<int64_t> pre_pad;  // non-empty: pad explicitly, then pool with padding 0
  std::vector<int64_t> padding;
};

PoolPlan plan_pool(const OpContext& ctx) {
  const ir::Shape& x = ctx.in(0).shape;
  if (x.size() < 3 || x.size() > 5) unsupported("{}: pooling over rank {}", ctx.where(), x.size());
  auto kernel = ctx.node.attr_ints("kernel_shape");
  if (kernel.size() != x.size() - 2)
    fail("{}: kernel_shape must have {} values", ctx.where(), x.size() - 2);
  PoolPlan p;
  p.w = resolve_window(ctx, kernel, std::vector<int64_t>(x.begin() + 2, x.end()));
  p.ceil_mode = ctx.node.attr_int("ceil_mode", 0) != 0;
  bool fits = p.w.symmetric();  // LibTorch pads symmetrically, at most half the kernel
  for (size_t i = 0; fits && i < kernel.size(); ++i) fits = p.w.pad_begin[i] * 2 <= kernel[i];
  if (fits) {
    p.padding = p.w.pad_begin;
  } else {
    p.pre_pad = torch_pad_arg(p.w.pad_begin, p.w.pad_end);
    p.padding.assign(kernel.size(), 0);
  }
  return p;
}

// ONNX Indices flatten the whole input (N, C and the spatial dimensions, row-major, or
// column-major over H and W with storage_order=1); ATen's count within one (n, c) plane.
at::Tensor onnx_indices(const at::Tensor& idx, const at::Tensor& x, bool column_major) {
  int64_t plane = 1;
  for (int64_t d = 2; d < x.dim(); ++d) plane *= x.size(d);
  at::Tensor i = idx;
  if (column_major) {
    int64_t h = x.size(2), w = x.size(3);
    i = at::remainder(i, w) * h + at::div(i, w, "floor");
  }
  std::vector<int64_t> offset_shape(x.dim(), 1);
  offset_shape[0] = x.size(0);
  offset_shape[1] = x.size(1);
  at::Tensor offset = at::arange(x.size(0) * x.size(1), at::kLong).reshape(offset_shape) * plane;
  return i + offset;
}

Kernel build_maxpool(const OpContext& ctx) {
  bool with_indices = ctx.node.has_output(1);
  bool column_major = ctx.node.attr_int("storage_order", 0) != 0;
  PoolPlan p = plan_pool(ctx);
  if (with_indices && !p.pre_pad.empty())
    unsupported("{}: the Indices output with asymmetric or large padding is not supported",
                ctx.where());
  if (with_indices && column_major && ctx.in(0).shape.size() != 4)
    unsupported("{}: storage_order=1 is supported for 2-D pooling only", ctx.where());
  // ATen pools floating types only; 8-bit integers (and any up to 32 bits) are exact in double.
  bool integral = at::isIntegralType(to_scalar_type(ctx.in(0).dtype), true);
  return [p, with_indices, column_major, integral](const Tensors& in, Tensors& out) {
    at::Tensor x = integral ? in[0].to(at::kDouble) : in[0];
    if (!p.pre_pad.empty())
      x = at::constant_pad_nd(x, p.pre_pad, -std::numeric_limits<double>::infinity());
    at::Tensor y, idx;
    if (with_indices) {
      // 1-D pools as 2-D with a unit height; indices within a plane are the same.
      bool one_d = x.dim() == 3;
      at::Tensor x4 = one_d ? x.unsqueeze(2) : x;
      auto pad1 = [one_d](const std::vector<int64_t>& v, int64_t fill) {
        if (!one_d) return v;
        return std::vector<int64_t>{fill, v[0]};
      };
      std::tie(y, idx) =
          x4.dim() == 4
              ? at::max_pool2d_with_indices(x4, pad1(p.w.kernel, 1), pad1(p.w.strides, 1),
                                            pad1(p.padding, 0), pad1(p.w.dilations, 1), p.ceil_mode)
              : at::max_pool3d_with_indices(x4, p.w.kernel, p.w.strides, p.padding, p.w.dilations,
                                            p.ceil_mode);
      if (one_d) y = y.squeeze(2), idx = idx.squeeze(2);
      out[1] = onnx_indices(idx, x, column_major);
    } else {
      switch (x.dim()) {
        case 3:
          y = at::max_pool1d(x, p.w.kernel, p.w.strides, p.padding, p.w.dilations, p.ceil_mode);
          break;
        case 4:
          y = at::max_pool2d(x, p.w.kernel, p.w.strides, p.padding, p.w.dilations, p.ceil_mode);
          break;
        default:
          y = at::max_pool3d(x, p.w.kernel, p.w.strides, p.padding, p.w.dilations, p.ceil_mode);
      }
    }
    out[0] = integral ? y.to(in[0].scalar_type()) : y;
  };
}

at::Tensor avg_pool(const at::Tensor& x, const PoolPlan& p, bool include_pad) {
  switch (x.dim()) {
    case 3:
      return at::avg_pool1d(x, p.w.kernel, p.w.strides, p.padding, p.ceil_mode, include_pad);
    case 4:
      return at::avg_pool2d(x, p.w.kernel, p.w.strides, p.padding, p.ceil_mode, include_pad);
    default:
      return at::avg_pool3d(x, p.w.kernel, p.w.strides, p.padding, p.ceil_mode, include_pad);
  }
}

Kernel build_avgpool(const OpContext& ctx) {
  for (int64_t d : ctx.node.attr_ints("dilations"))
    if (d != 1) unsupported("{}: dilated AveragePool is not supported", ctx.where());
  PoolPlan p = plan_pool(ctx);
  bool include_pad = ctx.node.attr_int("count_include_pad", 0) != 0;
  if (p.pre_pad.empty())
    return [p, include_pad](const Tensors& in, Tensors& out) {
      out[0] = avg_pool(in[0], p, include_pad);
    };
  // Explicit padding: average the zero-padded input, and when pads do not count divide by
  // the share of real elements in each window (the same pooling of a padded mask of ones).
  return [p, include_pad](const Tensors& in, Tensors& out) {
    at::Tensor padded = at::constant_pad_nd(in[0], p.pre_pad, 0);
    at::Tensor y = avg_pool(padded, p, true);
    if (!include_pad) {
      std::vector<int64_t> mask_shape(in[0].sizes().begin(), in[0].sizes().end());
      mask_shape[0] = mask_shape[1] = 1;
      at::Tensor mask = at::constant_pad_nd(at::ones(mask_shape, in[0].options()), p.pre_pad, 0);
      y = y / avg_pool(mask, p, true);
    }
    out[0] = y;
  };
}

std::vector<int64_t> spatial_dims(int64_t rank) {
  std::vector<int64_t> d;
  for (int64_t i = 2; i < rank; ++i) d.push_back(i);
  return d;
}

Kernel build_global_avg(const OpContext& ctx) {
  auto dims = spatial_dims(static_cast<int64_t>(ctx.in(0).shape.size()));
  return [dims](const Tensors& in, Tensors& out) { out[0] = at::mean(in[0], dims, true); };
}

Kernel build_global_max(const OpContext& ctx) {
  auto dims = spatial_dims(static_cast<int64_t>(ctx.in(0).shape.size()));
  return [dims](const Tensors& in, Tensors& out) { out[0] = at::amax(in[0], dims, true); };
}

enum class Reduce { Mean, Sum, Max, Min, Prod, L1, L2, SumSquare, LogSum, LogSumExp };

// Axes come from an attribute before opset 18 (13 for ReduceSum), from input 1 after. The
// result keeps the input's type: ATen would widen integer sums to int64, and computes means
// and logarithms of integers in double here, truncated back.
template <Reduce R>
Kernel build_reduce(const OpContext& ctx) {
  bool keep = ctx.node.attr_int("keepdims", 1) != 0;
  bool noop_empty = ctx.node.attr_int("noop_with_empty_axes", 0) != 0;
  int64_t rank = static_cast<int64_t>(ctx.in(0).shape.size());
  std::vector<int64_t> attr_axes = ctx.node.attr_ints("axes");
  bool axes_from_input = ctx.has_in(1);
  return [=](const Tensors& in, Tensors& out) {
    std::vector<int64_t> axes = axes_from_input ? to_int64s(in[1]) : attr_axes;
    if (axes.empty() && noop_empty) {
      out[0] = in[0];
      return;
    }
    if (axes.empty())
      for (int64_t i = 0; i < rank; ++i) axes.push_back(i);
    for (int64_t& a : axes) a = a < 0 ? a + rank : a;
    const at::ScalarType type = in[0].scalar_type();
    constexpr bool real_valued =
        R == Reduce::Mean || R == Reduce::L2 || R == Reduce::LogSum || R == Reduce::LogSumExp;
    const at::Tensor x =
        real_valued && at::isIntegralType(type, true) ? in[0].to(at::kDouble) : in[0];
    at::Tensor y;
    switch (R) {
      case Reduce::Mean:
        y = at::mean(x, axes, keep);
        break;
      case Reduce::Sum:
        y = at::sum(x, axes, keep, type);
        break;
      case Reduce::Max:
        y = at::amax(x, axes, keep);
        break;
      case Reduce::Min:
        y = at::amin(x, axes, keep);
        break;
      case Reduce::L1:
        y = at::sum(at::abs(x), axes, keep, type);
        break;
      case Reduce::L2:
        y = at::sqrt(at::sum(x * x, axes, keep));
        break;
      case Reduce::SumSquare:
        y = at::sum(x * x, axes, keep, type);
        break;
      case Reduce::LogSum:
        y = at::log(at::sum(x, axes, keep));
        break;
      case Reduce::LogSumExp:
        y = at::logsumexp(x, axes, keep);
        break;
      case Reduce::Prod: {
        y = x;
        std::sort(axes.rbegin(), axes.rend());
        for (int64_t a : axes) y = at::prod(y, a, keep, type);
      }
    }
    out[0] = y.scalar_type() == type ? y : y.to(type);
  };
}

// ArgMax/ArgMin: the first extreme along `axis`, or the last with select_last_index=1.
template <bool Max>
Kernel build_arg_extreme(const OpContext& ctx) {
  int64_t rank = static_cast<int64_t>(ctx.in(0).shape.size());
  int64_t axis = normalize_axis(ctx.node.attr_int("axis", 0), rank, ctx);
  bool keep = ctx.node.attr_int("keepdims", 1) != 0;
  bool last = ctx.node.attr_int("select_last_index", 0) != 0;
  return [axis, keep, last](const Tensors& in, Tensors& out) {
    at::Tensor x = last ? in[0].flip(axis) : in[0];
    at::Tensor i = Max ? at::argmax(x, axis, keep) : at::argmin(x, axis, keep);
    out[0] = last ? x.size(axis) - 1 - i : i;
  };
}

// TopK: the k largest (or smallest) along `axis`; equal values keep their index order, as
// ONNX asks, thanks to a stable sort.
Kernel build_topk(const OpContext& ctx) {
  int64_t rank = static_cast<int64_t>(ctx.in(0).shape.size());
  int64_t axis = normalize_axis(ctx.node.attr_int("axis", -1), rank, ctx);
  bool largest = ctx.node.attr_int("largest", 1) != 0;
  int64_t attr_k = ctx.node.attr_int("k", -1);  // an attribute before opset 10
  return [axis, largest, attr_k](const Tensors& in, Tensors& out) {
    int64_t k = in.size() > 1 && in[1].defined() ? to_int64s(in[1]).at(0) : attr_k;
    auto [values, indices] = at::sort(in[0], /*stable=*/true, axis, /*descending=*/largest);
    out[0] = values.narrow(axis, 0, k);
    if (out.size() > 1) out[1] = indices.narrow(axis, 0, k);
  };
}

// CumSum: `exclusive` shifts the sums by one; `reverse` runs from the end.
Kernel build_cumsum(const OpContext& ctx) {
  bool exclusive = ctx.node.attr_int("exclusive", 0) != 0;
  bool reverse = ctx.node.attr_int("reverse", 0) != 0;
  return [exclusive, reverse](const Tensors& in, Tensors& out) {
    int64_t axis = to_int64s(in[1]).at(0);
    if (axis < 0) axis += in[0].dim();
    at::Tensor x = reverse ? in[0].flip(axis) : in[0];
    at::Tensor y = at::cumsum(x, axis, x.scalar_type());
    if (exclusive && x.size(axis) > 0)
      y = at::cat({at::zeros_like(y.narrow(axis, 0, 1)), y.narrow(axis, 0, x.size(axis) - 1)},
                  axis);
    out[0] = reverse ? y.flip(axis) : y;
  };
}

int64_t pool_macs(const OpContext& ctx) {
  auto k = ctx.node.attr_ints("kernel_shape");
  return ir::numel(ctx.out(0).shape) * ir::numel(ir::Shape(k.begin(), k.end()));
}

int64_t global_pool_macs(const OpContext& ctx) {
  return ir::numel(ctx.in(0).shape);
}

const RegisterOps reg{
    {"MaxPool", build_maxpool, pool_macs},
    {"AveragePool", build_avgpool, pool_macs},
    {"GlobalAveragePool", build_global_avg, global_pool_macs},
    {"GlobalMaxPool", build_global_max, global_pool_macs},
    {"ReduceMean", build_reduce<Reduce::Mean>, global_pool_macs},
    {"ReduceSum", build_reduce<Reduce::Sum>, global_pool_macs},
    {"ReduceMax", build_reduce<Reduce::Max>, nullptr},
    {"ReduceMin", build_reduce<Reduce::Min>, nullptr},
    {"ReduceProd", build_reduce<Reduce::Prod>, nullptr},
    {"ReduceL2", build_reduce<Reduce::L2>, nullptr},
    {"ReduceL1", build_reduce<Reduce::L1>, nullptr},
    {"ReduceSumSquare", build_reduce<Reduce::SumSquare>, nullptr},
    {"ReduceLogSum", build_reduce<Reduce::LogSum>, nullptr},
    {"ReduceLogSumExp", build_reduce<Reduce::LogSumExp>, nullptr},
    {"ArgMax", build_arg_extreme<true>, nullptr},
    {"ArgMin", build_arg_extreme<false>, nullptr},
    {"TopK", build_topk, nullptr},
    {"CumSum", build_cumsum, nullptr},
};

// Channels: spatial pooling keeps them; a reduction over the channel axis freezes them.
void spatial_channels(supernet::ChannelContext& c) {
  if (c.in(0).axis != 1) return c.freeze_all("channels not on axis 1");
  c.pass_through();
}

void reduce_channels(supernet::ChannelContext& c) {
  const supernet::Layout& x = c.in(0);
  const int64_t rank = static_cast<int64_t>(c.in_tensor(0).shape.size());
  std::vector<int64_t> axes = c.node.attr_ints("axes");
  if (c.has_in(1)) {
    if (!c.is_const(1)) return c.freeze_all("axes computed at run time");
    axes = c.in_tensor(1).value->to_int64();
  }
  if (axes.empty() || !x.valid()) return c.freeze_all("reduces over every axis");
  bool keep = c.node.attr_int("keepdims", 1) != 0;
  int shift = 0;
  for (int64_t a : axes) {
    a = a < 0 ? a + rank : a;
    if (a == x.axis) return c.freeze_all("reduces over the channel axis");
    if (a < x.axis && !keep) ++shift;
  }
  supernet::Layout y = x;
  y.axis -= shift;
  c.set_out(0, y);
}

const RegisterChannelRules channel_rules{
    {"MaxPool", spatial_channels},           {"AveragePool", spatial_channels},
    {"GlobalAveragePool", spatial_channels}, {"GlobalMaxPool", spatial_channels},
    {"ReduceMean", reduce_channels},         {"ReduceSum", reduce_channels},
    {"ReduceMax", reduce_channels},          {"ReduceMin", reduce_channels},
};
}  // namespace
}  // namespace autotailor::ops
