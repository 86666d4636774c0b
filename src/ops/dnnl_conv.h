// Inference convolution on oneDNN (the library LibTorch itself links): weights reordered once
// into the layout the chosen kernel wants, activations kept as ordinary channels-last (NHWC)
// LibTorch tensors so every other op reads them as they are, and element-wise successors
// fused as post-ops.
#pragma once

#include <memory>
#include <vector>

#include "op_registry.h"

namespace autotailor::ops {

struct ConvGeometry {
  std::vector<int64_t> strides, dilations, pad_begin, pad_end;
  int64_t groups = 1;
};

// A kernel for a 2-D float convolution followed by `post`; inputs: x, w, [b], then one addend
// per Sum post-op.
Kernel make_dnnl_conv(const ConvGeometry& geo, bool has_bias, const std::vector<PostOp>& post);

bool dnnl_available();

}  // namespace autotailor::ops
