#include "spatial.h"

namespace autotailor::ops {

Window resolve_window(const OpContext& ctx, const std::vector<int64_t>& kernel,
                      const std::vector<int64_t>& in_spatial, bool ceil_mode) {
  const ir::Node& n = ctx.node;
  const size_t r = kernel.size();
  Window w;
  w.kernel = kernel;
  w.strides = n.attr_ints("strides", std::vector<int64_t>(r, 1));
  w.dilations = n.attr_ints("dilations", std::vector<int64_t>(r, 1));
  std::vector<int64_t> pads = n.attr_ints("pads", std::vector<int64_t>(2 * r, 0));
  if (w.strides.size() != r || w.dilations.size() != r || pads.size() != 2 * r)
    fail("{}: strides, dilations and pads must match the {} spatial dimensions", ctx.where(), r);
  w.pad_begin.assign(pads.begin(), pads.begin() + r);
  w.pad_end.assign(pads.begin() + r, pads.end());
  std::string auto_pad = n.attr_str("auto_pad", "NOTSET");
  if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    for (size_t i = 0; i < r; ++i) {
      int64_t out = (in_spatial[i] + w.strides[i] - 1) / w.strides[i];
      int64_t eff = (w.kernel[i] - 1) * w.dilations[i] + 1;
      int64_t total = std::max<int64_t>(0, (out - 1) * w.strides[i] + eff - in_spatial[i]);
      int64_t small = total / 2, big = total - small;
      w.pad_begin[i] = auto_pad == "SAME_UPPER" ? small : big;
      w.pad_end[i] = auto_pad == "SAME_UPPER" ? big : small;
    }
  } else if (auto_pad == "VALID") {
    std::fill(w.pad_begin.begin(), w.pad_begin.end(), 0);
    std::fill(w.pad_end.begin(), w.pad_end.end(), 0);
  } else if (auto_pad != "NOTSET") {
    fail("{}: unknown auto_pad '{}'", ctx.where(), auto_pad);
  }
  (void)ceil_mode;
  return w;
}

std::vector<int64_t> torch_pad_arg(const std::vector<int64_t>& begin,
                                   const std::vector<int64_t>& end) {
  std::vector<int64_t> p;
  for (size_t i = begin.size(); i-- > 0;) {
    p.push_back(begin[i]);
    p.push_back(end[i]);
  }
  return p;
}

}  // namespace autotailor::ops
