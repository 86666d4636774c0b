// Float16 and float64 models as float32: autotailor trains, searches and exports in float32.
#include <cmath>
#include <cstring>

#include "autotailor/ir/graph.h"

namespace autotailor::ir {

namespace {

float half_to_float(uint16_t h) {
  int sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v;
  if (exp == 0)
    v = std::ldexp(static_cast<float>(mant), -24);  // subnormal (or zero)
  else if (exp == 31)
    v = mant ? std::nanf("") : INFINITY;
  else
    v = std::ldexp(static_cast<float>(mant | 0x400), exp - 25);
  return sign ? -v : v;
}

bool is_wide_or_half(DType t) {
  return t == DType::Float16 || t == DType::Float64;
}

std::shared_ptr<const ConstData> as_float32(const ConstData& c) {
  std::vector<float> v(static_cast<size_t>(c.numel()));
  if (c.dtype == DType::Float16) {
    const uint16_t* p = c.data<uint16_t>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = half_to_float(p[i]);
  } else {
    const double* p = c.data<double>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(p[i]);
  }
  return ConstData::from_float(v, c.shape);
}

}  // namespace

int convert_to_float32(Graph& g) {
  int changed = 0;
  for (Tensor& t : g.tensors) {
    if (!is_wide_or_half(t.dtype)) continue;
    if (t.value) t.value = as_float32(*t.value);
    t.dtype = DType::Float32;
    ++changed;
  }
  for (Node& n : g.nodes)
    for (auto& [name, a] : n.attrs) {
      if (a.kind == Attribute::Kind::Tensor && a.t && is_wide_or_half(a.t->dtype))
        a.t = as_float32(*a.t);
      // Cast (and the like) to float16 or float64: to float32 instead.
      if (a.kind == Attribute::Kind::Int && (name == "to" || name == "dtype") &&
          (a.i == static_cast<int64_t>(DType::Float16) ||
           a.i == static_cast<int64_t>(DType::Float64)))
        a.i = static_cast<int64_t>(DType::Float32);
    }
  return changed;
}

}  // namespace autotailor::ir
