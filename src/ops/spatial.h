// Padding and window arithmetic shared by Conv and the pooling ops (ONNX auto_pad rules).
#pragma once

#include <vector>

#include "op_registry.h"

namespace autotailor::ops {

struct Window {
  std::vector<int64_t> kernel, strides, dilations;
  std::vector<int64_t> pad_begin, pad_end;  // resolved for the static input shape
  bool symmetric() const { return pad_begin == pad_end; }
};

// Reads kernel_shape (or takes `kernel` when the op derives it from weights), strides,
// dilations, pads and auto_pad for an input of spatial size `in_spatial`.
Window resolve_window(const OpContext& ctx, const std::vector<int64_t>& kernel,
                      const std::vector<int64_t>& in_spatial, bool ceil_mode = false);

// at::constant_pad_nd argument order (last dimension first) for begin/end pads.
std::vector<int64_t> torch_pad_arg(const std::vector<int64_t>& begin,
                                   const std::vector<int64_t>& end);

}  // namespace autotailor::ops
