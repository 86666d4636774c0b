// Element-wise ops: activations, unary math, broadcasting binary ops, variadic Sum/Max/Min/Mean,
// comparisons, Where, Softmax, Identity, Dropout.
#include <c10/util/accumulate.h>

#include <limits>

#include "../supernet/channels.h"
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
  // Not a structured binding: lambdas capture those only from C++20 (the fuzzer builds C++17).
  std::pair<int64_t, int64_t> lt = legacy_broadcast(ctx);
  int64_t lead = lt.first, trail = lt.second;
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

// Mod: integer remainder takes the divisor's sign (Python's %), fmod=1 the dividend's (C's).
Kernel build_mod(const OpContext& ctx) {
  bool c_style = ctx.node.attr_int("fmod", 0) != 0;
  if (!c_style && at::isFloatingType(to_scalar_type(ctx.in(0).dtype)))
    fail("{}: floating-point Mod needs fmod=1", ctx.where());
  return [c_style](const Tensors& in, Tensors& out) {
    out[0] = c_style ? at::fmod(in[0], in[1]) : at::remainder(in[0], in[1]);
  };
}

Kernel build_is_inf(const OpContext& ctx) {
  bool neg = ctx.node.attr_int("detect_negative", 1) != 0;
  bool pos = ctx.node.attr_int("detect_positive", 1) != 0;
  return [neg, pos](const Tensors& in, Tensors& out) {
    const at::Tensor& x = in[0];
    out[0] = neg && pos ? at::isinf(x)
             : neg      ? at::isneginf(x)
             : pos      ? at::isposinf(x)
                        : at::zeros(x.sizes(), x.options().dtype(at::kBool));
  };
}

Kernel build_celu(const OpContext& ctx) {
  double a = ctx.node.attr_float("alpha", 1.0f);
  return [a](const Tensors& in, Tensors& out) { out[0] = at::celu(in[0], a); };
}

Kernel build_thresholded_relu(const OpContext& ctx) {
  double a = ctx.node.attr_float("alpha", 1.0f);
  return [a](const Tensors& in, Tensors& out) { out[0] = at::threshold(in[0], a, 0); };
}

// Shrink: x+bias below -lambd, x-bias above lambd, 0 between; the result keeps x's type.
Kernel build_shrink(const OpContext& ctx) {
  double bias = ctx.node.attr_float("bias", 0.0f), lambd = ctx.node.attr_float("lambd", 0.5f);
  return [bias, lambd](const Tensors& in, Tensors& out) {
    at::Tensor x = in[0].to(at::kDouble);
    at::Tensor y =
        at::where(x < -lambd, x + bias, at::where(x > lambd, x - bias, at::zeros_like(x)));
    out[0] = y.to(in[0].scalar_type());
  };
}

// Hardmax: one-hot of the first maximum along `axis` (over the 2-D flattening before opset 13).
Kernel build_hardmax(const OpContext& ctx) {
  int64_t rank = static_cast<int64_t>(ctx.in(0).shape.size());
  bool legacy = ctx.opset() < 13;
  int64_t axis = normalize_axis(ctx.node.attr_int("axis", legacy ? 1 : -1), rank, ctx);
  return [axis, legacy](const Tensors& in, Tensors& out) {
    const at::Tensor& x = in[0];
    at::Tensor v = legacy ? x.reshape({c10::multiply_integers(x.sizes().slice(0, axis)),
                                       c10::multiply_integers(x.sizes().slice(axis))})
                          : x;
    int64_t dim = legacy ? 1 : axis;
    at::Tensor y = at::zeros_like(v);
    if (v.numel() > 0) y.scatter_(dim, at::argmax(v, dim, true), 1);
    out[0] = y.reshape(x.sizes());
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
    {"Add", build_binary<Bin::Add>, per_element, add_post},
    {"Sub", build_binary<Bin::Sub>, per_element},
    {"Mul", build_binary<Bin::Mul>, per_element},
    {"Div", build_binary<Bin::Div>, per_element},
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
    {"Mod", build_mod, nullptr},
    {"Round", AT_UNARY(round), nullptr},
    {"IsNaN", AT_UNARY(isnan), nullptr},
    {"IsInf", build_is_inf, nullptr},
    {"Tan", AT_UNARY(tan), nullptr},
    {"Asin", AT_UNARY(asin), nullptr},
    {"Acos", AT_UNARY(acos), nullptr},
    {"Atan", AT_UNARY(atan), nullptr},
    {"Sinh", AT_UNARY(sinh), nullptr},
    {"Cosh", AT_UNARY(cosh), nullptr},
    {"Asinh", AT_UNARY(asinh), nullptr},
    {"Acosh", AT_UNARY(acosh), nullptr},
    {"Atanh", AT_UNARY(atanh), nullptr},
    {"Celu", build_celu, nullptr},
    {"ThresholdedRelu", build_thresholded_relu, nullptr},
    {"Shrink", build_shrink, nullptr},
    {"Hardmax", build_hardmax, nullptr},
};

// Channels: element-wise ops keep them. Operands that broadcast are aligned from the right;
// every computed operand that spans the output's channel axis must keep the same channels
// (unified), constants spanning it are sliced along, operands of size 1 there are untouched.
void same_channels(supernet::ChannelContext& c) {
  c.pass_through();
}

void broadcast_channels(supernet::ChannelContext& c) {
  const ir::Shape& y = c.out_tensor(0).shape;
  const int64_t r = static_cast<int64_t>(y.size());
  if (r < 2) return c.freeze_all("no channel axis");
  std::optional<supernet::Layout> joined;
  std::vector<std::pair<size_t, int>> consts;
  for (size_t k = 0; k < c.node.inputs.size(); ++k) {
    if (!c.has_in(k)) continue;
    const ir::Shape& s = c.in_tensor(k).shape;
    int ax = static_cast<int>(1 - (r - static_cast<int64_t>(s.size())));
    if (ax < 0 || s[ax] == 1) continue;
    if (c.is_const(k)) {
      consts.emplace_back(k, ax);
      continue;
    }
    const supernet::Layout& l = c.in(k);
    if (l.axis != ax) return c.freeze_all("operands disagree on the channel axis");
    if (!joined)
      joined = l;
    else
      c.state.unify(*joined, l, c.why("operands combined element-wise"));
  }
  if (!joined) return c.freeze_all("no computed operand spans the channels");
  for (auto [k, ax] : consts) c.bind(k, ax, *joined, supernet::Binding::Role::PassThrough);
  supernet::Layout out = *joined;
  out.axis = 1;
  c.set_out(0, out);
}

const RegisterChannelRules channel_rules{
    {"Relu", same_channels},       {"Sigmoid", same_channels},     {"Tanh", same_channels},
    {"Erf", same_channels},        {"Sqrt", same_channels},        {"Exp", same_channels},
    {"Log", same_channels},        {"Neg", same_channels},         {"Abs", same_channels},
    {"Reciprocal", same_channels}, {"Floor", same_channels},       {"Ceil", same_channels},
    {"Sign", same_channels},       {"LeakyRelu", same_channels},   {"Elu", same_channels},
    {"Selu", same_channels},       {"HardSigmoid", same_channels}, {"HardSwish", same_channels},
    {"Softplus", same_channels},   {"Softsign", same_channels},    {"Clip", same_channels},
    {"Identity", same_channels},   {"Dropout", same_channels},     {"PRelu", broadcast_channels},
    {"Add", broadcast_channels},   {"Sub", broadcast_channels},    {"Mul", broadcast_channels},
    {"Div", broadcast_channels},   {"Pow", broadcast_channels},    {"Sum", broadcast_channels},
    {"Max", broadcast_channels},   {"Min", broadcast_channels},    {"Mean", broadcast_channels},
};
}  // namespace
}  // namespace autotailor::ops
