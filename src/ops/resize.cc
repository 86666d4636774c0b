// Resize (and the older Upsample): nearest, N-linear and cubic interpolation with ONNX's
// coordinate transformations, one axis at a time (the interpolations are separable; the last
// axis goes first, as in ONNX's reference, which matters only for tf_crop_and_resize's
// extrapolated values).
#include <algorithm>
#include <cmath>

#include "op_registry.h"

namespace autotailor::ops {
namespace {

enum class Interp { Nearest, Linear, Cubic };

struct ResizeSpec {
  Interp mode = Interp::Nearest;
  std::string transform = "half_pixel";  // coordinate_transformation_mode
  std::string nearest = "round_prefer_floor";
  double cubic_a = -0.75, extrapolation = 0;
  bool exclude_outside = false;
  int roi = -1, scales = -1, sizes = -1;  // input positions, -1 when the op has none
  std::vector<float> attr_scales;         // Upsample-7
};

// Where output coordinates o (0..out-1) fall in the input, for one axis. `length` is the
// resized length before rounding down (in * scale), which ONNX's reference uses where the
// transformation needs the output length.
at::Tensor source_coordinates(const ResizeSpec& s, int64_t in, int64_t out, double scale,
                              double length, double roi_start, double roi_end) {
  at::Tensor o = at::arange(out, at::kDouble);
  const std::string& t = s.transform;
  if (t == "half_pixel") return (o + 0.5) / scale - 0.5;
  if (t == "pytorch_half_pixel") return length > 1 ? (o + 0.5) / scale - 0.5 : at::zeros_like(o);
  if (t == "align_corners") return length == 1 ? at::zeros_like(o) : o * ((in - 1) / (length - 1));
  if (t == "asymmetric") return o / scale;
  if (t == "tf_half_pixel_for_nn") return (o + 0.5) / scale;
  // tf_crop_and_resize
  if (length == 1) return at::full({out}, 0.5 * (roi_start + roi_end) * (in - 1), at::kDouble);
  return roi_start * (in - 1) + o * ((roi_end - roi_start) * (in - 1) / (length - 1));
}

at::Tensor nearest_index(const ResizeSpec& s, const at::Tensor& x) {
  if (s.nearest == "round_prefer_floor") return at::ceil(x - 0.5);
  if (s.nearest == "round_prefer_ceil") return at::floor(x + 0.5);
  if (s.nearest == "floor") return at::floor(x);
  return at::ceil(x);
}

// Interpolation taps for coordinates x: neighbour indices (unclamped) and their weights.
std::vector<std::pair<at::Tensor, at::Tensor>> taps(const ResizeSpec& s, const at::Tensor& x,
                                                    int64_t in) {
  std::vector<std::pair<at::Tensor, at::Tensor>> t;
  if (s.mode == Interp::Nearest) {
    t.emplace_back(nearest_index(s, x), at::ones_like(x));
    return t;
  }
  at::Tensor f = at::floor(x), r = x - f;
  if (s.mode == Interp::Linear) {
    t.emplace_back(f, 1 - r);
    t.emplace_back(f + 1, r);
    return t;
  }
  double a = s.cubic_a;
  auto far = [a](const at::Tensor& d) { return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a; };
  auto near = [a](const at::Tensor& d) { return ((a + 2) * d - (a + 3)) * d * d + 1; };
  t.emplace_back(f - 1, far(r + 1));
  t.emplace_back(f, near(r));
  t.emplace_back(f + 1, near(1 - r));
  t.emplace_back(f + 2, far(2 - r));
  if (s.exclude_outside) {
    at::Tensor total = at::zeros_like(x);
    for (auto& [idx, w] : t) {
      w = at::where((idx < 0) | (idx > in - 1), at::zeros_like(w), w);
      total = total + w;
    }
    for (auto& [idx, w] : t) w = w / total;
  }
  return t;
}

// Resizes axis `d` of y to `out` elements.
at::Tensor resize_axis(const ResizeSpec& s, const at::Tensor& y, int64_t d, int64_t out,
                       double scale, double length, double roi_start, double roi_end) {
  int64_t in = y.size(d);
  at::Tensor x = source_coordinates(s, in, out, scale, length, roi_start, roi_end);
  std::vector<int64_t> along(y.dim(), 1);
  along[d] = out;
  at::Tensor result;
  for (auto& [idx, w] : taps(s, x, in)) {
    at::Tensor picked = y.index_select(d, at::clamp(idx, 0, in - 1).to(at::kLong));
    at::Tensor term =
        s.mode == Interp::Nearest ? picked : picked * w.to(y.scalar_type()).view(along);
    result = result.defined() ? result + term : term;
  }
  if (s.transform == "tf_crop_and_resize") {
    at::Tensor outside = ((x < 0) | (x > in - 1)).view(along);
    result = at::where(outside, at::scalar_tensor(s.extrapolation, result.options()), result);
  }
  return result;
}

std::vector<double> doubles(const at::Tensor& t) {
  at::Tensor c = t.to(at::kDouble).contiguous().reshape({-1});
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

Kernel make_resize(const ResizeSpec& spec) {
  return [spec](const Tensors& in, Tensors& out) {
    const at::Tensor& x = in[0];
    int64_t rank = x.dim();
    auto given = [&in](int k) {
      return k >= 0 && static_cast<size_t>(k) < in.size() && in[k].defined() && in[k].numel() > 0;
    };
    std::vector<double> scales(rank, 1.0), lengths(rank);
    std::vector<int64_t> sizes(rank);
    if (given(spec.sizes)) {
      sizes = to_int64s(in[spec.sizes]);
      if (sizes.size() != static_cast<size_t>(rank))
        throw Error("Resize: sizes must have one value per input dimension");
      for (int64_t d = 0; d < rank; ++d) {
        scales[d] = static_cast<double>(sizes[d]) / static_cast<double>(x.size(d));
        lengths[d] = static_cast<double>(sizes[d]);
      }
    } else {
      if (given(spec.scales))
        scales = doubles(in[spec.scales]);
      else if (!spec.attr_scales.empty())
        scales.assign(spec.attr_scales.begin(), spec.attr_scales.end());
      if (scales.size() != static_cast<size_t>(rank))
        throw Error("Resize: scales must have one value per input dimension");
      for (int64_t d = 0; d < rank; ++d) {
        lengths[d] = x.size(d) * scales[d];
        sizes[d] = static_cast<int64_t>(std::floor(lengths[d]));
      }
    }
    std::vector<double> roi(2 * rank, 0.0);
    for (int64_t d = 0; d < rank; ++d) roi[rank + d] = 1.0;
    if (given(spec.roi)) roi = doubles(in[spec.roi]);
    bool crop = spec.transform == "tf_crop_and_resize";
    if (crop && roi.size() != static_cast<size_t>(2 * rank))
      throw Error("Resize: roi must have two values per input dimension");
    // Interpolating integers: in double, truncated back like ONNX's reference.
    at::ScalarType type = x.scalar_type();
    bool exact = spec.mode == Interp::Nearest || type == at::kFloat || type == at::kDouble;
    at::Tensor y = exact ? x : x.to(at::kDouble);
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (sizes[d] == x.size(d) && scales[d] == 1.0 && !crop) continue;
      y = resize_axis(spec, y, d, sizes[d], scales[d], lengths[d], roi[d], roi[rank + d]);
    }
    out[0] = exact ? y : y.to(type);
  };
}

Interp interp_mode(const OpContext& ctx) {
  std::string m = ctx.node.attr_str("mode", "nearest");
  if (m == "nearest") return Interp::Nearest;
  if (m == "linear" || m == "bilinear") return Interp::Linear;
  if (m == "cubic") return Interp::Cubic;
  unsupported("{}: interpolation mode '{}' is not supported", ctx.where(), m);
}

Kernel build_resize(const OpContext& ctx) {
  ResizeSpec s;
  s.mode = interp_mode(ctx);
  if (ctx.opset() < 11) {
    // Resize-10: (X, scales), asymmetric coordinates, nearest rounds down (as Upsample).
    s.transform = "asymmetric";
    s.nearest = "floor";
    s.scales = 1;
    return make_resize(s);
  }
  s.transform = ctx.node.attr_str("coordinate_transformation_mode", "half_pixel");
  s.nearest = ctx.node.attr_str("nearest_mode", "round_prefer_floor");
  s.cubic_a = ctx.node.attr_float("cubic_coeff_a", -0.75f);
  s.exclude_outside = ctx.node.attr_int("exclude_outside", 0) != 0;
  s.extrapolation = ctx.node.attr_float("extrapolation_value", 0.0f);
  static const char* transforms[] = {"half_pixel", "pytorch_half_pixel",   "align_corners",
                                     "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize"};
  if (std::find(std::begin(transforms), std::end(transforms), s.transform) == std::end(transforms))
    unsupported("{}: coordinate_transformation_mode '{}' is not supported", ctx.where(),
                s.transform);
  static const char* roundings[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
  if (std::find(std::begin(roundings), std::end(roundings), s.nearest) == std::end(roundings))
    unsupported("{}: nearest_mode '{}' is not supported", ctx.where(), s.nearest);
  if (ctx.node.attr_int("antialias", 0) != 0)
    unsupported("{}: antialiased Resize is not supported", ctx.where());
  if (ctx.node.attr("axes")) unsupported("{}: Resize with axes is not supported", ctx.where());
  s.roi = 1;
  s.scales = 2;
  s.sizes = 3;
  return make_resize(s);
}

// Upsample (opsets 7-9): scales as an attribute (7) or input (9); asymmetric coordinates.
Kernel build_upsample(const OpContext& ctx) {
  ResizeSpec s;
  s.mode = interp_mode(ctx);
  s.transform = "asymmetric";
  s.nearest = "floor";
  if (ctx.has_in(1))
    s.scales = 1;
  else
    s.attr_scales = ctx.node.attr_floats("scales");
  return make_resize(s);
}

const RegisterOps reg{
    {"Resize", build_resize, nullptr},
    {"Upsample", build_upsample, nullptr},
};

}  // namespace
}  // namespace autotailor::ops
