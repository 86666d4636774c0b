// Ops driven by index tensors: GatherElements, GatherND, ScatterElements (and the older
// Scatter), ScatterND, OneHot, Trilu. Negative indices count from the end of their axis.
#include <c10/util/accumulate.h>

#include "op_registry.h"

namespace autotailor::ops {
namespace {

at::Tensor wrap_negative(const at::Tensor& idx, int64_t dim) {
  at::Tensor i = idx.to(at::kLong);
  return at::where(i < 0, i + dim, i);
}

Kernel build_gather_elements(const OpContext& ctx) {
  int64_t axis = normalize_axis(ctx.node.attr_int("axis", 0),
                                static_cast<int64_t>(ctx.in(0).shape.size()), ctx);
  return [axis](const Tensors& in, Tensors& out) {
    out[0] = at::gather(in[0], axis, wrap_negative(in[1], in[0].size(axis)));
  };
}

// Row-major positions of index tuples (the last dimension of `idx`, r values each) within the
// leading r dimensions of `data` (from `first` on): [..., r] -> [...].
at::Tensor linear_positions(const at::Tensor& idx, const at::Tensor& data, int64_t first) {
  int64_t r = idx.size(-1);
  at::Tensor lin = at::zeros(idx.sizes().slice(0, idx.dim() - 1), idx.options().dtype(at::kLong));
  for (int64_t j = 0; j < r; ++j) {
    int64_t dim = data.size(first + j);
    lin = lin * dim + wrap_negative(idx.select(-1, j), dim);
  }
  return lin;
}

// GatherND: data [B..., D...], indices [B..., Q..., r] -> [B..., Q..., D[r:]...], where the
// first batch_dims dimensions pair up.
Kernel build_gather_nd(const OpContext& ctx) {
  int64_t b = ctx.node.attr_int("batch_dims", 0);
  return [b](const Tensors& in, Tensors& out) {
    const at::Tensor& data = in[0];
    const at::Tensor& indices = in[1];
    int64_t r = indices.size(-1);
    int64_t batch = c10::multiply_integers(data.sizes().slice(0, b));
    int64_t cells = c10::multiply_integers(data.sizes().slice(b, r));
    auto rest = data.sizes().slice(b + r);
    at::Tensor idx = indices.reshape({batch, -1, r});
    at::Tensor lin = linear_positions(idx, data, b);  // [batch, Q]
    lin = lin + at::arange(batch, lin.options()).unsqueeze(1) * cells;
    at::Tensor rows = data.reshape({batch * cells, c10::multiply_integers(rest)});
    std::vector<int64_t> shape(indices.sizes().begin(), indices.sizes().end() - 1);
    shape.insert(shape.end(), rest.begin(), rest.end());
    out[0] = rows.index_select(0, lin.reshape({-1})).reshape(shape);
  };
}

// The ATen scatter_reduce/index_reduce name of an ONNX reduction; "" for none.
std::string reduction(const OpContext& ctx) {
  std::string r = ctx.node.attr_str("reduction", "none");
  if (r == "none") return "";
  if (r == "add") return "sum";
  if (r == "mul") return "prod";
  if (r == "max") return "amax";
  if (r == "min") return "amin";
  fail("{}: unknown reduction '{}'", ctx.where(), r);
}

Kernel build_scatter_elements(const OpContext& ctx) {
  int64_t axis = normalize_axis(ctx.node.attr_int("axis", 0),
                                static_cast<int64_t>(ctx.in(0).shape.size()), ctx);
  std::string reduce = reduction(ctx);
  return [axis, reduce](const Tensors& in, Tensors& out) {
    at::Tensor idx = wrap_negative(in[1], in[0].size(axis));
    out[0] = reduce.empty() ? at::scatter(in[0], axis, idx, in[2])
                            : at::scatter_reduce(in[0], axis, idx, in[2], reduce, true);
  };
}

// ScatterND: data [D...], indices [Q..., r], updates [Q..., D[r:]...].
Kernel build_scatter_nd(const OpContext& ctx) {
  std::string reduce = reduction(ctx);
  return [reduce](const Tensors& in, Tensors& out) {
    const at::Tensor& data = in[0];
    const at::Tensor& indices = in[1];
    int64_t r = indices.size(-1);
    int64_t cells = c10::multiply_integers(data.sizes().slice(0, r));
    at::Tensor rows = data.reshape({cells, -1}).clone();
    at::Tensor lin = linear_positions(indices.reshape({-1, r}), data, 0);
    at::Tensor updates = in[2].reshape({lin.size(0), rows.size(1)});
    if (reduce.empty())
      rows.index_copy_(0, lin, updates);
    else if (reduce == "sum")
      rows.index_add_(0, lin, updates);
    else
      rows.index_reduce_(0, lin, updates, reduce, true);
    out[0] = rows.reshape(data.sizes());
  };
}

// OneHot: `values` = [off, on]; the new axis of size `depth` goes at `axis`; indices outside
// [-depth, depth) give a row of `off`.
Kernel build_one_hot(const OpContext& ctx) {
  int64_t rank = static_cast<int64_t>(ctx.in(0).shape.size()) + 1;
  int64_t axis = normalize_axis(ctx.node.attr_int("axis", -1), rank, ctx);
  return [axis](const Tensors& in, Tensors& out) {
    int64_t depth = static_cast<int64_t>(in[1].reshape({-1})[0].item<double>());
    at::Tensor idx = wrap_negative(in[0], depth);
    at::Tensor valid = (idx >= 0) & (idx < depth);
    at::Tensor hot = at::one_hot(at::where(valid, idx, at::zeros_like(idx)), depth).to(at::kBool) &
                     valid.unsqueeze(-1);
    at::Tensor values = in[2].reshape({-1});
    out[0] = at::where(hot, values[1], values[0]).movedim(-1, axis);
  };
}

// Trilu: keeps the upper (or lower) triangle of the last two dimensions from diagonal k on.
Kernel build_trilu(const OpContext& ctx) {
  bool upper = ctx.node.attr_int("upper", 1) != 0;
  return [upper](const Tensors& in, Tensors& out) {
    int64_t k = in.size() > 1 && in[1].defined() ? to_int64s(in[1]).at(0) : 0;
    out[0] = upper ? at::triu(in[0], k) : at::tril(in[0], k);
  };
}

const RegisterOps reg{
    {"GatherElements", build_gather_elements, nullptr},
    {"GatherND", build_gather_nd, nullptr},
    {"ScatterElements", build_scatter_elements, nullptr},
    {"Scatter", build_scatter_elements, nullptr},
    {"ScatterND", build_scatter_nd, nullptr},
    {"OneHot", build_one_hot, nullptr},
    {"Trilu", build_trilu, nullptr},
};

}  // namespace
}  // namespace autotailor::ops
