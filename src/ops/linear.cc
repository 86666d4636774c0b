// Gemm and MatMul.
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

const RegisterOps reg{
    {"Gemm", build_gemm, gemm_macs},
    {"MatMul", build_matmul, matmul_macs},
};

}  // namespace
}  // namespace autotailor::ops
