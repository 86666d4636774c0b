// Pooling and reductions: MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, Reduce*.
#include <limits>

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

enum class Reduce { Mean, Sum, Max, Min, Prod, L2 };

// Axes come from an attribute before opset 18 (13 for ReduceSum), from input 1 after.
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
    const at::Tensor& x = in[0];
    switch (R) {
      case Reduce::Mean:
        out[0] = at::mean(x, axes, keep);
        break;
      case Reduce::Sum:
        out[0] = at::sum(x, axes, keep);
        break;
      case Reduce::Max:
        out[0] = at::amax(x, axes, keep);
        break;
      case Reduce::Min:
        out[0] = at::amin(x, axes, keep);
        break;
      case Reduce::L2:
        out[0] = at::sqrt(at::sum(x * x, axes, keep));
        break;
      case Reduce::Prod: {
        at::Tensor y = x;
        std::sort(axes.rbegin(), axes.rend());
        for (int64_t a : axes) y = at::prod(y, a, keep);
        out[0] = y;
      }
    }
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
};

}  // namespace
}  // namespace autotailor::ops
