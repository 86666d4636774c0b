// Element-wise ops: activations, unary math, broadcasting binary ops, variadic Sum/Max/Min/Mean,
// comparisons, Where, Softmax, Identity, Dropout.
#include <c10/util/accumulate.h>

#include <limits>

#include "op_registry.h"

namespace autotailor::ops {
namespace {

// In-place form when the input is a private intermediate and the output keeps its shape.
bool inplace_ok(const OpContext& ctx) {
  return ctx.can_overwrite(0) && ctx.in(0).shape == ctx.out(0).shape &&
         ctx.in(0).dtype == ctx.out(0).dtype;
}

template <at::Tensor (*F)(const at::Tensor&), at::Tensor& (*FI)(at::Tensor&)>
Kernel build_unary(const OpContext& ctx) {
  if (FI != nullptr && inplace_ok(ctx))
    return [](const Tensors& in, Tensors& out) {
      at::Tensor x = in[0];
      FI(x);
      out[0] = x;
    };
  return [](const Tensors& in, Tensors& out) { out[0] = F(in[0]); };
}

// Unary ops whose ONNX name maps to one ATen function.
#define AT_UNARY(fn) build_unary<static_cast<at::Tensor (*)(const at::Tensor&)>(&at::fn), nullptr>
#define AT_UNARY_INPLACE(fn)                                           \
  build_unary<static_cast<at::Tensor (*)(const at::Tensor&)>(&at::fn), \
              static_cast<at::Tensor& (*)(at::Tensor&)>(&at::fn##_)>

template <class F>
Kernel maybe_inplace(const OpContext& ctx, F f) {
  bool inplace = inplace_ok(ctx);
  return [inplace, f](const Tensors& in, Tensors& out) { out[0] = f(in[0], inplace); };
}

Kernel build_leaky_relu(const OpContext& ctx) {
  double a = ctx.node.attr_float("alpha", 0.01f);
  return maybe_inplace(ctx, [a](const at::Tensor& x, bool ip) {
    at::Tensor y = x;
    return ip ? at::leaky_relu_(y, a) : at::leaky_relu(x, a);
  });
}

Kernel build_elu(const OpContext& ctx) {
  double a = ctx.node.attr_float("alpha", 1.0f);
  return [a](const Tensors& in, Tensors& out) { out[0] = at::elu(in[0], a); };
}

Kernel build_selu(const OpContext& ctx) {
  double a = ctx.node.attr_float("alpha", 1.67326319217681884765625f);
  double g = ctx.node.attr_float("gamma", 1.05070102214813232421875f);
  return [a, g](const Tensors& in, Tensors& out) { out[0] = at::elu(in[0], a, g); };
}

Kernel build_hard_sigmoid(const OpContext& ctx) {
  double a = ctx.node.attr_float("alpha", 0.2f), b = ctx.node.attr_float("beta", 0.5f);
  bool is_torch_form = std::abs(a - 1.0 / 6) < 1e-6 && b == 0.5;
  return maybe_inplace(ctx, [a, b, is_torch_form](const at::Tensor& x, bool ip) {
    at::Tensor y = x;
    if (is_torch_form) return ip ? at::hardsigmoid_(y) : at::hardsigmoid(x);
    return at::clamp(x * a + b, 0.0, 1.0);
  });
}

Kernel build_hard_swish(const OpContext& ctx) {
  return maybe_inplace(ctx, [](const at::Tensor& x, bool ip) {
    at::Tensor y = x;
    return ip ? at::hardswish_(y) : at::hardswish(x);
  });
}

Kernel build_softplus(const OpContext&) {
  return [](const Tensors& in, Tensors& out) { out[0] = at::log1p(at::exp(in[0])); };
}

Kernel build_softsign(const OpContext&) {
  return [](const Tensors& in, Tensors& out) { out[0] = in[0] / (at::abs(in[0]) + 1); };
}

// Clip: bounds are attributes before opset 11, optional inputs after.
Kernel build_clip(const OpContext& ctx) {
  bool attr_form = ctx.opset() < 11;
  double amin = ctx.node.attr_float("min", -std::numeric_limits<float>::max());
  double amax = ctx.node.attr_float("max", std::numeric_limits<float>::max());
  bool inplace = inplace_ok(ctx);
  return [=](const Tensors& in, Tensors& out) {
    c10::optional<at::Scalar> lo, hi;
    if (attr_form) {
      lo = amin;
      hi = amax;
    } else {
      if (in.size() > 1 && in[1].defined()) lo = in[1].item();
      if (in.size() > 2 && in[2].defined()) hi = in[2].item();
    }
    if (!lo && !hi) {
      out[0] = in[0];
      return;
    }
    at::Tensor x = in[0];
    out[0] = inplace ? at::clamp_(x, lo, hi) : at::clamp(x, lo, hi);
  };
}

// Softmax and LogSoftmax: before opset 13 the input is flattened to 2-D at `axis`.
template <bool Log>
Kernel build_softmax(const OpContext& ctx) {
  int64_t rank = static_cast<int64_t>(ctx.in(0).shape.size());
  bool legacy = ctx.opset() < 13;
  int64_t axis = normalize_axis(ctx.node.attr_int("axis", legacy ? 1 : -1), rank, ctx);
  return [axis, legacy](const Tensors& in, Tensors& out) {
    const at::Tensor& x = in[0];
    if (!legacy) {
      out[0] = Log ? at::log_softmax(x, axis) : at::softmax(x, axis);
      return;
    }
    at::Tensor flat =
        x.reshape({x.numel() == 0 ? 0 : -1, c10::multiply_integers(x.sizes().slice(axis))});
    at::Tensor y = Log ? at::log_softmax(flat, 1) : at::softmax(flat, 1);
    out[0] = y.reshape(x.sizes());
  };
}

Kernel build_identity(const OpContext&) {
  return [](const Tensors& in, Tensors& out) { out[0] = in[0]; };
}

Kernel build_dropout(const OpContext& ctx) {
  const ir::ConstData* mode = ctx.const_in(2);
  if (ctx.has_in(2) && (!mode || mode->to_int64().at(0) != 0))
    unsupported("{}: training-mode Dropout is not supported", ctx.where());
  if (ctx.node.attr_int("is_test", 1) == 0 && ctx.opset() < 7)
    unsupported("{}: training-mode Dropout is not supported", ctx.where());
  return [](const Tensors& in, Tensors& out) {
    out[0] = in[0];
    if (out.size() > 1) out[1] = at::ones(in[0].sizes(), in[0].options().dtype(at::kBool));
  };
}

enum class Bin { Add, Sub, Mul, Div, Pow, Equal, Less, Greater, LessEq, GreaterEq, And, Or, Xor };

// Before opset 7, B broadcasts to A only with broadcast=1, its dimensions aligned with A's
// starting at `axis` (trailing-aligned, as in numpy, when there is no axis). Returns how many
// unit dimensions to put before and after B's.
std::pair<int64_t, int64_t> legacy_broadcast(const OpContext& ctx) {
  if (ctx.opset() >= 7 || ctx.node.attr_int("broadcast", 0) == 0 || !ctx.node.attr("axis"))
    return {0, 0};
  int64_t rank_a = static_cast<int64_t>(ctx.in(0).shape.size());
  int64_t rank_b = static_cast<int64_t>(ctx.in(1).shape.size());
  int64_t axis = normalize_axis(ctx.node.attr_int("axis", 0), rank_a, ctx);
  if (axis + rank_b > rank_a)
    fail("{}: B of rank {} does not fit A of rank {} at axis {}", ctx.where(), rank_b, rank_a,
         axis);
  return {axis, rank_a - axis - rank_b};
}

template <Bin B>
Kernel build_binary(const OpContext& ctx) {
  auto [lead, trail] = legacy_broadcast(ctx);
  bool inplace = inplace_ok(ctx) && (B == Bin::Add || B == Bin::Sub || B == Bin::Mul);
  return [inplace, lead, trail](const Tensors& in, Tensors& out) {
    const at::Tensor& a = in[0];
    at::Tensor b = in[1];
    if (lead + trail > 0) {
      std::vector<int64_t> shape(lead, 1);
      shape.insert(shape.end(), b.sizes().begin(), b.sizes().end());
      shape.resize(shape.size() + trail, 1);
      b = b.reshape(shape);
    }
    if (inplace && b.scalar_type() == a.scalar_type()) {
      at::Tensor x = a;
      out[0] = B == Bin::Add ? x.add_(b) : B == Bin::Sub ? x.sub_(b) : x.mul_(b);
      return;
    }
    switch (B) {
      case Bin::Add:
        out[0] = at::add(a, b);
        break;
      case Bin::Sub:
        out[0] = at::sub(a, b);
        break;
      case Bin::Mul:
        out[0] = at::mul(a, b);
        break;
      case Bin::Div:
        // Integer division truncates in ONNX; LibTorch's true division would give floats.
        out[0] = at::isIntegralType(a.scalar_type(), true) ? at::div(a, b, "trunc") : at::div(a, b);
        break;
      case Bin::Pow:
        out[0] = at::pow(a, b).to(a.scalar_type());
        break;
      case Bin::Equal:
        out[0] = at::eq(a, b);
        break;
      case Bin::Less:
        out[0] = at::lt(a, b);
        break;
      case Bin::Greater:
        out[0] = at::gt(a, b);
        break;
      case Bin::LessEq:
        out[0] = at::le(a, b);
        break;
      case Bin::GreaterEq:
        out[0] = at::ge(a, b);
        break;
      case Bin::And:
        out[0] = at::logical_and(a, b);
        break;
      case Bin::Or:
        out[0] = at::logical_or(a, b);
        break;
      case Bin::Xor:
        out[0] = at::logical_xor(a, b);
        break;
    }
  };
}

enum class Var { Sum, Max, Min, Mean };

template <Var V>
Kernel build_variadic(const OpContext&) {
  return [](const Tensors& in, Tensors& out) {
    at::Tensor acc = in[0];
    for (size_t k = 1; k < in.size(); ++k) {
      switch (V) {
        case Var::Sum:
        case Var::Mean:
          acc = at::add(acc, in[k]);
          break;
        case Var::Max:
          acc = at::maximum(acc, in[k]);
          break;
        case Var::Min:
          acc = at::minimum(acc, in[k]);
          break;
      }
    }
    if (V == Var::Mean) acc = acc / static_cast<double>(in.size());
    out[0] = in.size() == 1 ? acc.clone() : acc;
  };
}

Kernel build_not(const OpContext&) {
  return [](const Tensors& in, Tensors& out) { out[0] = at::logical_not(in[0]); };
}

Kernel build_where(const OpContext&) {
  return [](const Tensors& in, Tensors& out) { out[0] = at::where(in[0], in[1], in[2]); };
}

Kernel build_prelu(const OpContext& ctx) {
  // Before opset 7 a 1-D slope holds one value per channel (axis 1), not a numpy broadcast.
  const ir::Shape& xs = ctx.in(0).shape;
  const ir::Shape& ss = ctx.in(1).shape;
  std::vector<int64_t> slope_shape;
  if (ctx.opset() < 7 && ss.size() == 1 && ss[0] > 1 && xs.size() > 2 && xs[1] == ss[0]) {
    slope_shape.assign(xs.size() - 1, 1);
    slope_shape[0] = ss[0];
  }
  return [slope_shape](const Tensors& in, Tensors& out) {
    at::Tensor slope = slope_shape.empty() ? in[1] : in[1].reshape(slope_shape);
    out[0] = at::where(in[0] >= 0, in[0], in[0] * slope);
  };
}

// How these ops fold into a preceding convolution (oneDNN post-ops).
template <PostOp::Kind K>
std::optional<PostOp> simple_post(const OpContext&) {
  PostOp p;
  p.kind = K;
  return p;
}

std::optional<PostOp> leaky_relu_post(const OpContext& ctx) {
  PostOp p{PostOp::Kind::LeakyRelu, ctx.node.attr_float("alpha", 0.01f)};
  return p;
}

std::optional<PostOp> hard_sigmoid_post(const OpContext& ctx) {
  PostOp p{PostOp::Kind::HardSigmoid, ctx.node.attr_float("alpha", 0.2f),
           ctx.node.attr_float("beta", 0.5f)};
  return p;
}

// Clip folds when its bounds are known while building (attributes, or constant inputs).
std::optional<PostOp> clip_post(const OpContext& ctx) {
  PostOp p{PostOp::Kind::Clip, -std::numeric_limits<float>::max(),
           std::numeric_limits<float>::max()};
  if (ctx.opset() < 11) {
    p.alpha = ctx.node.attr_float("min", p.alpha);
    p.beta = ctx.node.attr_float("max", p.beta);
    return p;
  }
  for (size_t k = 1; k <= 2; ++k) {
    if (!ctx.has_in(k)) continue;
    const ir::ConstData* c = ctx.const_in(k);
    if (!c || c->numel() != 1) return std::nullopt;
    (k == 1 ? p.alpha : p.beta) = static_cast<float>(c->to_double()[0]);
  }
  return p;
}

// Add folds as a Sum when it does not broadcast: both addends have the output's shape.
std::optional<PostOp> add_post(const OpContext& ctx) {
  if (ctx.in(0).shape != ctx.out(0).shape || ctx.in(1).shape != ctx.out(0).shape ||
      ctx.in(0).dtype != ir::DType::Float32 || ctx.in(1).dtype != ir::DType::Float32)
    return std::nullopt;
  PostOp p;
  p.kind = PostOp::Kind::Sum;
  return p;
}

int64_t per_element(const OpContext& ctx) {
  return ir::numel(ctx.out(0).shape);
}

const RegisterOps reg{
    {"Relu", AT_UNARY_INPLACE(relu), nullptr, simple_post<PostOp::Kind::Relu>},
    {"Sigmoid", AT_UNARY_INPLACE(sigmoid), nullptr, simple_post<PostOp::Kind::Sigmoid>},
    {"Tanh", AT_UNARY_INPLACE(tanh), nullptr, simple_post<PostOp::Kind::Tanh>},
    {"Erf", AT_UNARY(erf), nullptr},
    {"Sqrt", AT_UNARY(sqrt), nullptr},
    {"Exp", AT_UNARY(exp), nullptr},
    {"Log", AT_UNARY(log), nullptr},
    {"Neg", AT_UNARY(neg), nullptr},
    {"Abs", AT_UNARY(abs), nullptr},
    {"Reciprocal", AT_UNARY(reciprocal), nullptr},
    {"Floor", AT_UNARY(floor), nullptr},
    {"Ceil", AT_UNARY(ceil), nullptr},
    {"Sign", AT_UNARY(sign), nullptr},
    {"Sin", AT_UNARY(sin), nullptr},
    {"Cos", AT_UNARY(cos), nullptr},
    {"Not", build_not, nullptr},
    {"LeakyRelu", build_leaky_relu, nullptr, leaky_relu_post},
    {"Elu", build_elu, nullptr},
    {"Selu", build_selu, nullptr},
    {"PRelu", build_prelu, nullptr},
    {"HardSigmoid", build_hard_sigmoid, nullptr, hard_sigmoid_post},
    {"HardSwish", build_hard_swish, nullptr, simple_post<PostOp::Kind::HardSwish>},
    {"Softplus", build_softplus, nullptr},
    {"Softsign", build_softsign, nullptr},
    {"Clip", build_clip, nullptr, clip_post},
    {"Softmax", build_softmax<false>, per_element},
    {"LogSoftmax", build_softmax<true>, per_element},
    {"Identity", build_identity, nullptr},
    {"Dropout", build_dropout, nullptr},
    {"Add", build_binary<Bin::Add>, nullptr, add_post},
    {"Sub", build_binary<Bin::Sub>, nullptr},
    {"Mul", build_binary<Bin::Mul>, per_element},
    {"Div", build_binary<Bin::Div>, nullptr},
    {"Pow", build_binary<Bin::Pow>, nullptr},
    {"Equal", build_binary<Bin::Equal>, nullptr},
    {"Less", build_binary<Bin::Less>, nullptr},
    {"Greater", build_binary<Bin::Greater>, nullptr},
    {"LessOrEqual", build_binary<Bin::LessEq>, nullptr},
    {"GreaterOrEqual", build_binary<Bin::GreaterEq>, nullptr},
    {"And", build_binary<Bin::And>, nullptr},
    {"Or", build_binary<Bin::Or>, nullptr},
    {"Xor", build_binary<Bin::Xor>, nullptr},
    {"Sum", build_variadic<Var::Sum>, nullptr},
    {"Max", build_variadic<Var::Max>, nullptr},
    {"Min", build_variadic<Var::Min>, nullptr},
    {"Mean", build_variadic<Var::Mean>, nullptr},
    {"Where", build_where, nullptr},
};

}  // namespace
}  // namespace autotailor::ops
