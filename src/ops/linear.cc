// Gemm, MatMul and Einsum.
#include <algorithm>

#include "../supernet/channels.h"
#include "op_registry.h"

namespace autotailor::ops {
namespace {

Kernel build_gemm(const OpContext& ctx) {
  float alpha = ctx.node.attr_float("alpha", 1.0f), beta = ctx.node.attr_float("beta", 1.0f);
  bool ta = ctx.node.attr_int("transA", 0) != 0, tb = ctx.node.attr_int("transB", 0) != 0;
  bool has_c = ctx.has_in(2);
  if (ctx.in(0).shape.size() != 2 || ctx.in(1).shape.size() != 2)
    fail("{}: Gemm takes 2-D A and B, got {} and {}", ctx.where(), ir::shape_str(ctx.in(0).shape),
         ir::shape_str(ctx.in(1).shape));
  return [=](const Tensors& in, Tensors& out) {
    at::Tensor a = ta ? in[0].t() : in[0];
    at::Tensor b = tb ? in[1].t() : in[1];
    if (has_c && beta != 0.0f) {
      at::Tensor c = in[2];
      if (c.dim() == 1 && alpha == 1.0f && beta == 1.0f && c.size(0) == b.size(1)) {
        out[0] = at::addmm(c, a, b);  // the common Linear layer: one fused call
      } else {
        out[0] = at::addmm(c.expand({a.size(0), b.size(1)}), a, b, beta, alpha);
      }
    } else {
      out[0] = alpha == 1.0f ? at::mm(a, b) : at::mm(a, b) * alpha;
    }
  };
}

int64_t gemm_macs(const OpContext& ctx) {
  const ir::Shape& a = ctx.in(0).shape;
  bool ta = ctx.node.attr_int("transA", 0) != 0;
  int64_t k = a.size() == 2 ? a[ta ? 0 : 1] : 0;
  return ir::numel(ctx.out(0).shape) * k;
}

Kernel build_matmul(const OpContext&) {
  return [](const Tensors& in, Tensors& out) { out[0] = at::matmul(in[0], in[1]); };
}

int64_t matmul_macs(const OpContext& ctx) {
  const ir::Shape& a = ctx.in(0).shape;
  return a.empty() ? 0 : ir::numel(ctx.out(0).shape) * a.back();
}

// Einsum: ONNX's equations are numpy's, which ATen's einsum reads as they are (minus spaces).
Kernel build_einsum(const OpContext& ctx) {
  std::string eq = ctx.node.attr_str("equation", "");
  eq.erase(std::remove(eq.begin(), eq.end(), ' '), eq.end());
  if (eq.empty()) fail("{}: Einsum needs an equation", ctx.where());
  return [eq](const Tensors& in, Tensors& out) { out[0] = at::einsum(eq, in); };
}

const RegisterOps reg{
    {"Gemm", build_gemm, gemm_macs},
    {"MatMul", build_matmul, matmul_macs},
    {"Einsum", build_einsum, nullptr},
};

// Channels: features on the last axis of a 2-D input; the weight consumes them and produces
// a new space of output features.
void gemm_channels(supernet::ChannelContext& c) {
  using R = supernet::Binding::Role;
  const supernet::Layout& a = c.in(0);
  bool ta = c.node.attr_int("transA", 0) != 0, tb = c.node.attr_int("transB", 0) != 0;
  if (ta || !c.is_const(1) || a.axis != 1 || c.in_tensor(1).shape.size() != 2 ||
      c.out_tensor(0).shape.size() != 2)
    return c.freeze_all("features not on the last axis");
  c.bind(1, tb ? 1 : 0, a, R::Consumer);
  supernet::Layout y = c.fresh(c.out_tensor(0).shape[1]);
  c.bind(1, tb ? 0 : 1, y, R::Producer);
  if (c.has_in(2) && c.in_tensor(2).shape.size() == 1 && c.in_tensor(2).shape[0] > 1)
    c.bind(2, 0, y, R::Producer);
  c.set_out(0, y);
}

void matmul_channels(supernet::ChannelContext& c) {
  using R = supernet::Binding::Role;
  const supernet::Layout& a = c.in(0);
  if (c.in_tensor(0).shape.size() != 2 || !c.is_const(1) || c.in_tensor(1).shape.size() != 2 ||
      c.out_tensor(0).shape.size() != 2 || a.axis != 1)
    return c.freeze_all("only 2-D input times a constant matrix is followed");
  c.bind(1, 0, a, R::Consumer);
  supernet::Layout y = c.fresh(c.out_tensor(0).shape[1]);
  c.bind(1, 1, y, R::Producer);
  c.set_out(0, y);
}

const RegisterChannelRules channel_rules{{"Gemm", gemm_channels}, {"MatMul", matmul_channels}};
}  // namespace
}  // namespace autotailor::ops
