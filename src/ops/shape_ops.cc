// Data movement and shape computation: Reshape, Flatten, Transpose, Concat, Split, Slice, Pad,
// Squeeze, Unsqueeze, Shape, Size, Gather, Cast, CastLike, Constant, ConstantOfShape, EyeLike,
// Expand, Tile, Range, DepthToSpace, SpaceToDepth.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <optional>

#include "../supernet/channels.h"
#include "op_registry.h"
#include "spatial.h"

namespace autotailor::ops {
namespace {

// Files exported with batch 1 bake that 1 into Reshape targets (x.view(1, -1), folded Shape
// chains). When the data's batch differs at run time, a leading 1 that stood for the batch
// follows it, so any batch size runs.
Kernel build_reshape(const OpContext& ctx) {
  bool allowzero = ctx.node.attr_int("allowzero", 0) != 0;
  const ir::Shape& xs = ctx.in(0).shape;
  bool batch_follows = !xs.empty() && xs[0] == 1;
  std::vector<int64_t> attr_shape = ctx.node.attr_ints("shape");
  bool from_attr = ctx.opset() < 5;
  return [=](const Tensors& in, Tensors& out) {
    const at::Tensor& x = in[0];
    std::vector<int64_t> shape = from_attr ? attr_shape : to_int64s(in[1]);
    for (size_t i = 0; i < shape.size(); ++i)
      if (shape[i] == 0 && !allowzero) shape[i] = x.size(static_cast<int64_t>(i));
    if (batch_follows && x.dim() > 0 && x.size(0) != 1 && !shape.empty() && shape[0] == 1)
      shape[0] = x.size(0);
    out[0] = x.reshape(shape);
  };
}

Kernel build_flatten(const OpContext& ctx) {
  int64_t rank = static_cast<int64_t>(ctx.in(0).shape.size());
  int64_t axis = ctx.node.attr_int("axis", 1);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis > rank) fail("{}: axis out of range", ctx.where());
  return [axis](const Tensors& in, Tensors& out) {
    const at::Tensor& x = in[0];
    int64_t outer = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= x.size(i);
    int64_t inner = 1;
    for (int64_t i = axis; i < x.dim(); ++i) inner *= x.size(i);
    out[0] = x.reshape({outer, inner});
  };
}

Kernel build_transpose(const OpContext& ctx) {
  int64_t rank = static_cast<int64_t>(ctx.in(0).shape.size());
  std::vector<int64_t> def(rank);
  std::iota(def.rbegin(), def.rend(), 0);
  std::vector<int64_t> perm = ctx.node.attr_ints("perm", def);
  return [perm](const Tensors& in, Tensors& out) { out[0] = in[0].permute(perm); };
}

Kernel build_concat(const OpContext& ctx) {
  int64_t rank = static_cast<int64_t>(ctx.in(0).shape.size());
  int64_t axis = normalize_axis(ctx.node.attr_int("axis", 0), rank, ctx);
  return [axis](const Tensors& in, Tensors& out) {
    std::vector<at::Tensor> parts;
    for (const at::Tensor& t : in)
      if (t.defined()) parts.push_back(t);
    out[0] = at::cat(parts, axis);
  };
}

Kernel build_split(const OpContext& ctx) {
  int64_t rank = static_cast<int64_t>(ctx.in(0).shape.size());
  int64_t axis = normalize_axis(ctx.node.attr_int("axis", 0), rank, ctx);
  std::vector<int64_t> attr_split = ctx.node.attr_ints("split");
  size_t n_out = ctx.node.outputs.size();
  return [=](const Tensors& in, Tensors& out) {
    const at::Tensor& x = in[0];
    std::vector<int64_t> sizes = in.size() > 1 && in[1].defined() ? to_int64s(in[1]) : attr_split;
    if (sizes.empty()) {
      int64_t dim = x.size(axis), chunk = (dim + n_out - 1) / n_out;
      for (size_t k = 0; k < n_out; ++k)
        sizes.push_back(std::max<int64_t>(0, std::min(chunk, dim - chunk * int64_t(k))));
    }
    auto parts = at::split_with_sizes(x, sizes, axis);
    for (size_t k = 0; k < out.size() && k < parts.size(); ++k) out[k] = parts[k];
  };
}

// Slice: attributes before opset 10, inputs (starts, ends, axes, steps) after. Clamping
// follows the ONNX rules; negative steps go through index_select.
Kernel build_slice(const OpContext& ctx) {
  bool legacy = ctx.opset() < 10;
  std::vector<int64_t> a_starts = ctx.node.attr_ints("starts"), a_ends = ctx.node.attr_ints("ends"),
                       a_axes = ctx.node.attr_ints("axes");
  return [=](const Tensors& in, Tensors& out) {
    at::Tensor x = in[0];
    auto opt = [&](size_t k) {
      return in.size() > k && in[k].defined() ? to_int64s(in[k]) : std::vector<int64_t>{};
    };
    std::vector<int64_t> starts = legacy ? a_starts : to_int64s(in[1]);
    std::vector<int64_t> ends = legacy ? a_ends : to_int64s(in[2]);
    std::vector<int64_t> axes = legacy ? a_axes : opt(3);
    std::vector<int64_t> steps = legacy ? std::vector<int64_t>{} : opt(4);
    if (axes.empty())
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    if (steps.empty()) steps.assign(starts.size(), 1);
    for (size_t i = 0; i < starts.size(); ++i) {
      int64_t axis = axes[i] < 0 ? axes[i] + x.dim() : axes[i];
      int64_t dim = x.size(axis), step = steps[i];
      if (step == 0) throw Error("Slice step must not be 0");
      int64_t s = starts[i] < 0 ? starts[i] + dim : starts[i];
      int64_t e = ends[i] < 0 ? ends[i] + dim : ends[i];
      if (step > 0) {
        s = std::clamp<int64_t>(s, 0, dim);
        e = std::clamp<int64_t>(e, 0, dim);
        x = x.slice(axis, s, std::max(s, e), step);
      } else {
        s = std::clamp<int64_t>(s, 0, dim - 1);
        e = std::clamp<int64_t>(e, -1, dim - 1);
        at::Tensor idx = s > e ? at::arange(s, e, step, at::kLong) : at::empty({0}, at::kLong);
        x = x.index_select(axis, idx);
      }
    }
    out[0] = x;
  };
}

// Pad: pads (and the constant) are attributes before opset 11, inputs after; opset 18 adds axes.
Kernel build_pad(const OpContext& ctx) {
  std::string mode = ctx.node.attr_str("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge")
    unsupported("{}: Pad mode '{}' is not supported", ctx.where(), mode);
  bool legacy = ctx.opset() < 11;
  std::vector<int64_t> a_pads = ctx.node.attr_ints(ctx.opset() < 2 ? "paddings" : "pads");
  double a_value = ctx.node.attr_float("value", 0.0f);
  bool constant = mode == "constant", edge = mode == "edge";
  return [=](const Tensors& in, Tensors& out) {
    const at::Tensor& x = in[0];
    int64_t rank = x.dim();
    std::vector<int64_t> pads = legacy ? a_pads : to_int64s(in[1]);
    at::Scalar value = a_value;
    if (!legacy && in.size() > 2 && in[2].defined() && in[2].numel() > 0) value = in[2].item();
    std::vector<int64_t> begin(rank, 0), end(rank, 0);
    std::vector<int64_t> axes;
    if (!legacy && in.size() > 3 && in[3].defined()) axes = to_int64s(in[3]);
    if (axes.empty())
      for (int64_t i = 0; i < rank; ++i) axes.push_back(i);
    size_t na = axes.size();
    if (pads.size() != 2 * na) throw Error("Pad: pads must have two values per padded axis");
    for (size_t i = 0; i < na; ++i) {
      int64_t a = axes[i] < 0 ? axes[i] + rank : axes[i];
      begin[a] = pads[i];
      end[a] = pads[i + na];
    }
    if (constant) {
      out[0] = at::constant_pad_nd(x, torch_pad_arg(begin, end), value);
      return;
    }
    // reflect/edge: gather each padded axis through an index map, which works for every
    // dtype and rank (ATen's reflection/replication kernels take floats and <= 3 dims only).
    at::Tensor y = x;
    for (int64_t a = 0; a < rank; ++a) {
      if (begin[a] == 0 && end[a] == 0) continue;
      int64_t n = x.size(a);
      if (n == 0) throw Error("Pad: reflect/edge padding of an empty axis");
      at::Tensor idx = at::arange(-begin[a], n + end[a], at::kLong);
      if (edge || n == 1) {
        idx = at::clamp(idx, 0, n - 1);
      } else {
        idx = at::remainder(idx, 2 * (n - 1));
        idx = at::where(idx >= n, 2 * (n - 1) - idx, idx);
      }
      y = y.index_select(a, idx);
    }
    out[0] = y;
  };
}

std::vector<int64_t> axes_of(const Tensors& in, bool from_input, const std::vector<int64_t>& attr) {
  return from_input ? (in.size() > 1 && in[1].defined() ? to_int64s(in[1]) : std::vector<int64_t>{})
                    : attr;
}

Kernel build_squeeze(const OpContext& ctx) {
  bool from_input = ctx.opset() >= 13;
  std::vector<int64_t> attr = ctx.node.attr_ints("axes");
  return [=](const Tensors& in, Tensors& out) {
    std::vector<int64_t> axes = axes_of(in, from_input, attr);
    const at::Tensor& x = in[0];
    std::vector<int64_t> shape;
    std::vector<char> drop(x.dim(), 0);
    for (int64_t a : axes) drop[a < 0 ? a + x.dim() : a] = 1;
    for (int64_t d = 0; d < x.dim(); ++d) {
      bool squeeze = axes.empty() ? x.size(d) == 1 : drop[d];
      if (!squeeze) shape.push_back(x.size(d));
    }
    out[0] = x.reshape(shape);
  };
}

Kernel build_unsqueeze(const OpContext& ctx) {
  bool from_input = ctx.opset() >= 13;
  std::vector<int64_t> attr = ctx.node.attr_ints("axes");
  return [=](const Tensors& in, Tensors& out) {
    std::vector<int64_t> axes = axes_of(in, from_input, attr);
    const at::Tensor& x = in[0];
    int64_t rank = x.dim() + static_cast<int64_t>(axes.size());
    std::vector<char> inserted(rank, 0);
    for (int64_t a : axes) inserted[a < 0 ? a + rank : a] = 1;
    std::vector<int64_t> shape;
    int64_t src = 0;
    for (int64_t d = 0; d < rank; ++d) shape.push_back(inserted[d] ? 1 : x.size(src++));
    out[0] = x.reshape(shape);
  };
}

Kernel build_shape(const OpContext& ctx) {
  int64_t start = ctx.node.attr_int("start", 0);
  std::optional<int64_t> end;
  if (ctx.node.attr("end")) end = ctx.node.attr_int("end", 0);
  return [start, end](const Tensors& in, Tensors& out) {
    int64_t rank = in[0].dim();
    auto clampi = [rank](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + rank : v, 0, rank); };
    int64_t s = clampi(start), e = end ? clampi(*end) : rank;
    std::vector<int64_t> dims(in[0].sizes().begin() + s, in[0].sizes().begin() + std::max(s, e));
    out[0] = at::tensor(dims, at::kLong);
    if (dims.empty()) out[0] = at::empty({0}, at::kLong);
  };
}

Kernel build_size(const OpContext&) {
  return
      [](const Tensors& in, Tensors& out) { out[0] = at::scalar_tensor(in[0].numel(), at::kLong); };
}

Kernel build_gather(const OpContext& ctx) {
  int64_t rank = static_cast<int64_t>(ctx.in(0).shape.size());
  int64_t axis = normalize_axis(ctx.node.attr_int("axis", 0), rank, ctx);
  return [axis](const Tensors& in, Tensors& out) {
    const at::Tensor& x = in[0];
    at::Tensor idx = in[1].to(at::kLong);
    idx = at::where(idx < 0, idx + x.size(axis), idx);
    std::vector<int64_t> shape(x.sizes().begin(), x.sizes().begin() + axis);
    shape.insert(shape.end(), idx.sizes().begin(), idx.sizes().end());
    shape.insert(shape.end(), x.sizes().begin() + axis + 1, x.sizes().end());
    out[0] = x.index_select(axis, idx.reshape({-1})).reshape(shape);
  };
}

Kernel build_cast(const OpContext& ctx) {
  auto to = to_scalar_type(static_cast<ir::DType>(ctx.node.attr_int("to", 0)));
  return [to](const Tensors& in, Tensors& out) { out[0] = in[0].to(to); };
}

at::Tensor constant_tensor(const OpContext& ctx) {
  const ir::Node& n = ctx.node;
  if (const ir::Attribute* a = n.attr("value"); a && a->t) return tensor_from_const(a->t);
  if (const ir::Attribute* a = n.attr("value_float")) return at::scalar_tensor(a->f, at::kFloat);
  if (const ir::Attribute* a = n.attr("value_int")) return at::scalar_tensor(a->i, at::kLong);
  if (const ir::Attribute* a = n.attr("value_floats")) return at::tensor(a->floats, at::kFloat);
  if (const ir::Attribute* a = n.attr("value_ints")) return at::tensor(a->ints, at::kLong);
  unsupported("{}: Constant without a supported value attribute", ctx.where());
}

Kernel build_constant(const OpContext& ctx) {
  at::Tensor value = constant_tensor(ctx);
  return [value](const Tensors&, Tensors& out) { out[0] = value; };
}

Kernel build_constant_of_shape(const OpContext& ctx) {
  at::Tensor fill = at::zeros({1}, at::kFloat);
  if (const ir::Attribute* a = ctx.node.attr("value"); a && a->t)
    fill = tensor_from_const(a->t).reshape({-1});
  return [fill](const Tensors& in, Tensors& out) {
    out[0] = at::full(to_int64s(in[0]), fill[0].item(), fill.options());
  };
}

// Expand broadcasts both ways: the result has the larger of each pair of dimensions.
Kernel build_expand(const OpContext&) {
  return [](const Tensors& in, Tensors& out) {
    const at::Tensor& x = in[0];
    std::vector<int64_t> shape = to_int64s(in[1]);
    int64_t rank = std::max<int64_t>(x.dim(), static_cast<int64_t>(shape.size()));
    std::vector<int64_t> target(rank);
    for (int64_t i = 0; i < rank; ++i) {
      int64_t xs = i - (rank - x.dim()) >= 0 ? x.size(i - (rank - x.dim())) : 1;
      int64_t ss =
          i - (rank - int64_t(shape.size())) >= 0 ? shape[i - (rank - int64_t(shape.size()))] : 1;
      target[i] = xs == 1 ? ss : xs;
    }
    out[0] = x.expand(target);
  };
}

Kernel build_tile(const OpContext&) {
  return [](const Tensors& in, Tensors& out) { out[0] = in[0].repeat(to_int64s(in[1])); };
}

Kernel build_range(const OpContext&) {
  return [](const Tensors& in, Tensors& out) {
    at::Tensor r = at::arange(in[0].item(), in[1].item(), in[2].item(), in[0].options());
    out[0] = r;
  };
}

Kernel build_cast_like(const OpContext&) {
  return [](const Tensors& in, Tensors& out) { out[0] = in[0].to(in[1].scalar_type()); };
}

// DepthToSpace moves channel blocks into b x b spatial tiles: depth-column-row order (DCR,
// the default) takes the block index from the leading channels, CRD from the trailing ones.
Kernel build_depth_to_space(const OpContext& ctx) {
  int64_t b = ctx.node.attr_int("blocksize", 0);
  bool crd = ctx.node.attr_str("mode", "DCR") == "CRD";
  if (b <= 0 || ctx.in(0).shape.size() != 4)
    fail("{}: DepthToSpace needs a positive blocksize and a 4-D input", ctx.where());
  return [b, crd](const Tensors& in, Tensors& out) {
    const at::Tensor& x = in[0];
    int64_t n = x.size(0), c = x.size(1) / (b * b), h = x.size(2), w = x.size(3);
    at::Tensor y = crd ? x.reshape({n, c, b, b, h, w}).permute({0, 1, 4, 2, 5, 3})
                       : x.reshape({n, b, b, c, h, w}).permute({0, 3, 4, 1, 5, 2});
    out[0] = y.reshape({n, c, h * b, w * b});
  };
}

Kernel build_space_to_depth(const OpContext& ctx) {
  int64_t b = ctx.node.attr_int("blocksize", 0);
  if (b <= 0 || ctx.in(0).shape.size() != 4)
    fail("{}: SpaceToDepth needs a positive blocksize and a 4-D input", ctx.where());
  return [b](const Tensors& in, Tensors& out) {
    const at::Tensor& x = in[0];
    int64_t n = x.size(0), c = x.size(1), h = x.size(2) / b, w = x.size(3) / b;
    out[0] =
        x.reshape({n, c, h, b, w, b}).permute({0, 3, 5, 1, 2, 4}).reshape({n, c * b * b, h, w});
  };
}

// EyeLike: ones on diagonal k of a 2-D tensor shaped like the input, in `dtype` (default the
// input's type).
Kernel build_eye_like(const OpContext& ctx) {
  int64_t k = ctx.node.attr_int("k", 0);
  const ir::Attribute* dtype = ctx.node.attr("dtype");
  at::ScalarType type = to_scalar_type(dtype ? static_cast<ir::DType>(dtype->i) : ctx.in(0).dtype);
  return [k, type](const Tensors& in, Tensors& out) {
    at::Tensor ones = at::ones(in[0].sizes(), at::kFloat);
    out[0] = ones.triu(k).tril(k).to(type);
  };
}

const RegisterOps reg{
    {"Reshape", build_reshape, nullptr},
    {"Flatten", build_flatten, nullptr},
    {"Transpose", build_transpose, nullptr},
    {"Concat", build_concat, nullptr},
    {"Split", build_split, nullptr},
    {"Slice", build_slice, nullptr},
    {"Pad", build_pad, nullptr},
    {"Squeeze", build_squeeze, nullptr},
    {"Unsqueeze", build_unsqueeze, nullptr},
    {"Shape", build_shape, nullptr},
    {"Size", build_size, nullptr},
    {"Gather", build_gather, nullptr},
    {"Cast", build_cast, nullptr},
    {"Constant", build_constant, nullptr},
    {"ConstantOfShape", build_constant_of_shape, nullptr},
    {"Expand", build_expand, nullptr},
    {"Tile", build_tile, nullptr},
    {"Range", build_range, nullptr},
    {"CastLike", build_cast_like, nullptr},
    {"DepthToSpace", build_depth_to_space, nullptr},
    {"SpaceToDepth", build_space_to_depth, nullptr},
    {"EyeLike", build_eye_like, nullptr},
};

// Channels through data movement. Flatten/Reshape to [N, C*H*W] keep channels as runs of H*W
// features; Concat on the channel axis lays its inputs' channels end to end; Split/Slice on it
// follow when they cut between whole channel spaces; Squeeze/Unsqueeze/Transpose/Pad move or
// keep the axis. Anything else (a channel shuffle, a cut through a space) freezes.
// The product of dimensions [from, to) (to the end by default); INT64_MIN (which no dimension
// equals) when it overflows, as absurd declared shapes can make it.
int64_t tail_product(const ir::Shape& s, size_t from, size_t to = SIZE_MAX) {
  int64_t p = 1;
  for (size_t i = from; i < std::min(to, s.size()); ++i)
    if (__builtin_mul_overflow(p, s[i], &p)) return INT64_MIN;
  return p;
}

bool same_dims(const ir::Shape& a, size_t from_a, const ir::Shape& b, size_t from_b) {
  return a.size() - from_a == b.size() - from_b &&
         std::equal(a.begin() + static_cast<std::ptrdiff_t>(from_a), a.end(),
                    b.begin() + static_cast<std::ptrdiff_t>(from_b));
}

// Reshape and Flatten: the channel axis stays, merges the axes after it (each channel then
// spans more positions: `inner` grows), is split into [g, C/g] (the start of a channel
// shuffle: the g chunks must shrink alike, so they are unified and axis 2 carries one chunk's
// channels), or, carried on axis 2, is merged with the count before it (the chunks laid end
// to end again). Anything else moves channels and freezes.
void flatten_like(supernet::ChannelContext& c, const ir::Shape& x, const ir::Shape& y) {
  const supernet::Layout& l = c.in(0);
  if (l.valid() && l.axis == 2 && x.size() >= 3 && y.size() + 1 == x.size() && y[0] == x[0] &&
      x[1] > 0 && x[1] <= 4096 && x[2] > 0 && y[1] == tail_product(x, 1, 3) &&
      same_dims(y, 2, x, 3)) {
    supernet::Layout out = l;
    out.axis = 1;
    out.segments.clear();
    for (int64_t k = 0; k < x[1]; ++k)
      out.segments.insert(out.segments.end(), l.segments.begin(), l.segments.end());
    return c.set_out(0, out);
  }
  if (l.axis != 1) return c.freeze_all("channels not on axis 1");
  if (y.size() >= 2 && y[0] == x[0] && y[1] == x[1] && tail_product(y, 2) == tail_product(x, 2) &&
      (l.inner == 1 || tail_product(x, 2) == 1))
    return c.pass_through();
  for (size_t k = 2; y.size() >= 2 && k < x.size(); ++k) {
    // [N, C, d2..dk, rest] -> [N, C*d2*..*dk, rest]
    int64_t merged = tail_product(x, 1, k + 1);
    if (x[1] > 0 && merged > 0 && y[0] == x[0] && y[1] == merged && same_dims(y, 2, x, k + 1)) {
      supernet::Layout out = l;
      if (__builtin_mul_overflow(l.inner, merged / x[1], &out.inner))
        return c.freeze_all("reshape to an impossible size");
      return c.set_out(0, out);
    }
  }
  if (y.size() == x.size() + 1 && y[0] == x[0] && y[1] > 0 && x[1] % y[1] == 0 &&
      x[1] / y[1] == y[2] && same_dims(y, 3, x, 2)) {
    std::vector<supernet::Layout> parts;
    if (!c.state.chunks(l, y[1], parts))
      return c.freeze_all("a channel shuffle's groups cut inside a channel space");
    for (size_t k = 1; k < parts.size(); ++k)
      c.state.unify(parts[0], parts[k], c.why("the groups of a channel shuffle"));
    supernet::Layout out = parts[0];
    out.axis = 2;
    return c.set_out(0, out);
  }
  c.freeze_all("reshape moves channels");
}

void flatten_channels(supernet::ChannelContext& c) {
  const ir::Shape& x = c.in_tensor(0).shape;
  int64_t axis = c.node.attr_int("axis", 1);
  if (axis < 0) axis += static_cast<int64_t>(x.size());
  if (axis != 1) return c.freeze_all("flattens the channel axis into another");
  flatten_like(c, x, c.out_tensor(0).shape);
}

void reshape_channels(supernet::ChannelContext& c) {
  flatten_like(c, c.in_tensor(0).shape, c.out_tensor(0).shape);
}

void squeeze_channels(supernet::ChannelContext& c) {
  const supernet::Layout& l = c.in(0);
  const ir::Shape& x = c.in_tensor(0).shape;
  const ir::Shape& y = c.out_tensor(0).shape;
  if (!l.valid()) return c.freeze_all("no channel axis");
  // The channel axis is where the same number of non-unit... dims precede it in both shapes.
  int64_t before = 0;
  for (int i = 0; i < l.axis; ++i) before += x[i] != 1;
  int64_t seen = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (seen == before && y[i] == x[l.axis]) {
      supernet::Layout out = l;
      out.axis = static_cast<int>(i);
      return c.set_out(0, out);
    }
    seen += y[i] != 1;
  }
  c.freeze_all("the channel axis is squeezed away");
}

void transpose_channels(supernet::ChannelContext& c) {
  const supernet::Layout& l = c.in(0);
  std::vector<int64_t> perm = c.node.attr_ints("perm");
  for (size_t i = 0; l.valid() && i < perm.size(); ++i) {
    if (perm[i] == l.axis) {
      supernet::Layout out = l;
      out.axis = static_cast<int>(i);
      if (l.inner == 1) return c.set_out(0, out);
    }
  }
  c.freeze_all("transpose moves channels");
}

void concat_channels(supernet::ChannelContext& c) {
  const int64_t rank = static_cast<int64_t>(c.out_tensor(0).shape.size());
  int64_t axis = c.node.attr_int("axis", 0);
  if (axis < 0) axis += rank;
  supernet::Layout out;
  for (size_t k = 0; k < c.node.inputs.size(); ++k) {
    if (!c.has_in(k)) continue;
    const supernet::Layout& l = c.in(k);
    if (c.is_const(k) || !l.valid()) return c.freeze_all("concatenates constants");
    if (l.inner != 1)
      return c.freeze_all("concatenates channels that span several positions (after a shuffle)");
    if (axis == l.axis) {
      if (out.valid() && out.axis != l.axis) return c.freeze_all("channel axes differ");
      out.axis = l.axis;
      out.segments.insert(out.segments.end(), l.segments.begin(), l.segments.end());
    } else if (!out.valid()) {
      out = l;
    } else {
      c.state.unify(out, l, c.why("concatenated along another axis"));
    }
  }
  c.set_out(0, out);
}

void split_channels(supernet::ChannelContext& c) {
  const supernet::Layout& l = c.in(0);
  const int64_t rank = static_cast<int64_t>(c.in_tensor(0).shape.size());
  int64_t axis = c.node.attr_int("axis", 0);
  if (axis < 0) axis += rank;
  if (!l.valid() || axis != l.axis) {
    for (size_t k = 0; k < c.node.outputs.size(); ++k) c.set_out(k, l);
    return;
  }
  if (l.inner != 1) return c.freeze_all("splits flattened channels");
  int64_t begin = 0;
  for (size_t k = 0; k < c.node.outputs.size(); ++k) {
    if (c.node.has_output(k) && c.out_tensor(k).shape.size() != static_cast<size_t>(rank))
      return c.freeze_all("an output's rank differs from the input's");
    int64_t len = c.node.has_output(k) ? c.out_tensor(k).shape[axis] : 0;
    supernet::Layout part = c.state.sub(l, begin, begin + len);
    if (len > 0 && !part.valid()) return c.freeze_all("splits inside a channel space");
    c.set_out(k, part);
    begin += len;
  }
}

void slice_channels(supernet::ChannelContext& c) {
  const supernet::Layout& l = c.in(0);
  const ir::Shape& x = c.in_tensor(0).shape;
  const ir::Shape& y = c.out_tensor(0).shape;
  if (y.size() != x.size()) return c.freeze_all("the output's rank differs from the input's");
  if (!l.valid() || x[l.axis] == y[l.axis]) return c.pass_through();
  // A step-1 slice of whole channels keeps the channel spaces it covers (cut at its bounds);
  // a subnet moves the bounds to the kept channels (Supernet::derive).
  std::optional<supernet::SliceRange> r = supernet::slice_range(c.graph(), c.node, l.axis);
  if (!r || r->step != 1 || r->begin % l.inner != 0 || r->end % l.inner != 0)
    return c.freeze_all("slices the channel axis with a step or run-time bounds");
  supernet::Layout part = c.state.sub(l, r->begin / l.inner, r->end / l.inner);
  if (!part.valid()) return c.freeze_all("slices inside a channel space");
  c.set_out(0, part);
}

void pad_channels(supernet::ChannelContext& c) {
  const supernet::Layout& l = c.in(0);
  const ir::Shape& x = c.in_tensor(0).shape;
  const ir::Shape& y = c.out_tensor(0).shape;
  if (l.valid() && y.size() == x.size() && x[l.axis] == y[l.axis] &&
      c.node.attr_str("mode", "constant") == "constant")
    return c.pass_through();
  c.freeze_all("pads the channel axis");
}

const RegisterChannelRules channel_rules{
    {"Flatten", flatten_channels},
    {"Reshape", reshape_channels},
    {"Squeeze", squeeze_channels},
    {"Unsqueeze", squeeze_channels},
    {"Transpose", transpose_channels},
    {"Concat", concat_channels},
    {"Split", split_channels},
    {"Slice", slice_channels},
    {"Pad", pad_channels},
};
}  // namespace
}  // namespace autotailor::ops
