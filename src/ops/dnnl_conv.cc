#include "dnnl_conv.h"

#include <ATen/Parallel.h>

#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>

namespace autotailor::ops {

namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::post_ops to_dnnl(const std::vector<PostOp>& post) {
  dnnl::post_ops po;
  for (const PostOp& p : post) {
    using K = PostOp::Kind;
    using A = dnnl::algorithm;
    switch (p.kind) {
      case K::Sum:
        po.append_sum(1.0f);
        break;
      case K::Relu:
        po.append_eltwise(1.0f, A::eltwise_relu, 0.0f, 0.0f);
        break;
      case K::LeakyRelu:
        po.append_eltwise(1.0f, A::eltwise_relu, p.alpha, 0.0f);
        break;
      case K::Clip:
        po.append_eltwise(1.0f, A::eltwise_clip_v2, p.alpha, p.beta);
        break;
      case K::HardSwish:
        po.append_eltwise(1.0f, A::eltwise_hardswish, 0.0f, 0.0f);
        break;
      case K::Sigmoid:
        po.append_eltwise(1.0f, A::eltwise_logistic, 0.0f, 0.0f);
        break;
      case K::Tanh:
        po.append_eltwise(1.0f, A::eltwise_tanh, 0.0f, 0.0f);
        break;
      case K::HardSigmoid:
        po.append_eltwise(1.0f, A::eltwise_linear, p.alpha, p.beta);
        po.append_eltwise(1.0f, A::eltwise_clip_v2, 0.0f, 1.0f);
        break;
    }
  }
  return po;
}

// One primitive per input geometry (batch sizes differ between calls); the packed weights are
// redone when the weight tensor changes (a subnet binds views of the shared weights).
class DnnlConv {
 public:
  DnnlConv(ConvGeometry geo, bool has_bias, std::vector<PostOp> post)
      : geo_(std::move(geo)), has_bias_(has_bias), post_(std::move(post)) {}

  void run(const Tensors& in, Tensors& out) {
    at::Tensor x = in[0].contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor& w = in[1];
    const int64_t n = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
    const int64_t oc = w.size(0), kh = w.size(2), kw = w.size(3);
    auto out_dim = [](int64_t i, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe) {
      return (i + pb + pe - ((k - 1) * d + 1)) / s + 1;
    };
    const int64_t oh =
        out_dim(h, kh, geo_.strides[0], geo_.dilations[0], geo_.pad_begin[0], geo_.pad_end[0]);
    const int64_t ow =
        out_dim(wd, kw, geo_.strides[1], geo_.dilations[1], geo_.pad_begin[1], geo_.pad_end[1]);
    if (c != w.size(1) * geo_.groups) throw Error("input channels do not match the weight");
    Plan& plan = plan_for(n, c, h, wd, oc, kh, kw, oh, ow);
    pack_weights(plan, w);

    // The Sum addend becomes the destination buffer: accumulate in place when allowed.
    at::Tensor y;
    size_t extra = has_bias_ ? 3 : 2;
    for (const PostOp& p : post_) {
      if (p.kind != PostOp::Kind::Sum) continue;
      const at::Tensor& addend = in[extra];
      bool fits = addend.sizes() == at::IntArrayRef({n, oc, oh, ow}) &&
                  addend.scalar_type() == at::kFloat &&
                  addend.is_contiguous(at::MemoryFormat::ChannelsLast);
      if (p.inplace && fits) {
        y = addend;
      } else {
        y = at::empty({n, oc, oh, ow}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
        y.copy_(addend.expand({n, oc, oh, ow}));
      }
    }
    if (!y.defined())
      y = at::empty({n, oc, oh, ow}, x.options().memory_format(at::MemoryFormat::ChannelsLast));

    memory src(plan.pd.src_desc(), engine(), x.data_ptr());
    memory dst(plan.pd.dst_desc(), engine(), y.data_ptr());
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, plan.packed}, {DNNL_ARG_DST, dst}};
    at::Tensor b;
    if (has_bias_) {
      b = in[2].contiguous();
      args.emplace(DNNL_ARG_BIAS, memory(plan.pd.bias_desc(), engine(), b.data_ptr()));
    }
    dnnl::stream s(engine());
    plan.prim.execute(s, args);
    s.wait();
    out[0] = y;
  }

 private:
  struct Plan {
    dnnl::convolution_forward::primitive_desc pd;
    dnnl::convolution_forward prim;
    memory packed;
    const void* packed_from = nullptr;  // weight data the packed copy was made from
    at::Tensor packed_source;           // keeps that data alive while the pointer is compared
  };

  Plan& plan_for(int64_t n, int64_t c, int64_t h, int64_t w, int64_t oc, int64_t kh, int64_t kw,
                 int64_t oh, int64_t ow) {
    auto key = std::make_tuple(n, c, h, w, oc, kh, kw);
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second;
    const int64_t g = geo_.groups;
    memory::dims wdims =
        g == 1 ? memory::dims{oc, c, kh, kw} : memory::dims{g, oc / g, c / g, kh, kw};
    memory::desc src_md({n, c, h, w}, dt::f32, tag::nhwc);
    memory::desc wei_md(wdims, dt::f32, tag::any);
    memory::desc bias_md({oc}, dt::f32, tag::a);
    memory::desc dst_md({n, oc, oh, ow}, dt::f32, tag::nhwc);
    memory::dims strides(geo_.strides.begin(), geo_.strides.end());
    memory::dims dil;
    for (int64_t d : geo_.dilations) dil.push_back(d - 1);  // oneDNN counts the gaps
    memory::dims pl(geo_.pad_begin.begin(), geo_.pad_begin.end());
    memory::dims pr(geo_.pad_end.begin(), geo_.pad_end.end());
    auto desc = has_bias_
                    ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                      dnnl::algorithm::convolution_direct, src_md,
                                                      wei_md, bias_md, dst_md, strides, dil, pl, pr)
                    : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                      dnnl::algorithm::convolution_direct, src_md,
                                                      wei_md, dst_md, strides, dil, pl, pr);
    dnnl::primitive_attr attr;
    attr.set_post_ops(to_dnnl(post_));
    dnnl::convolution_forward::primitive_desc pd(desc, attr, engine());
    Plan plan{pd, dnnl::convolution_forward(pd), memory(pd.weights_desc(), engine()), nullptr, {}};
    return plans_.emplace(key, std::move(plan)).first->second;
  }

  void pack_weights(Plan& plan, const at::Tensor& w) {
    if (plan.packed_from == w.data_ptr() && plan.packed_source.sizes() == w.sizes() &&
        plan.packed_source.strides() == w.strides())
      return;
    at::Tensor wc = w.contiguous();
    const int64_t g = geo_.groups;
    memory::dims wdims = g == 1 ? memory::dims{w.size(0), w.size(1), w.size(2), w.size(3)}
                                : memory::dims{g, w.size(0) / g, w.size(1), w.size(2), w.size(3)};
    memory user({wdims, dt::f32, g == 1 ? tag::oihw : tag::goihw}, engine(), wc.data_ptr());
    dnnl::stream s(engine());
    dnnl::reorder(user, plan.packed).execute(s, user, plan.packed);
    s.wait();
    plan.packed_from = w.data_ptr();
    plan.packed_source = w;
  }

  ConvGeometry geo_;
  bool has_bias_;
  std::vector<PostOp> post_;
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>, Plan> plans_;
};

}  // namespace

bool dnnl_available() {
  static const bool ok = [] {
    try {
      engine();
      return true;
    } catch (...) {
      return false;
    }
  }();
  return ok;
}

Kernel make_dnnl_conv(const ConvGeometry& geo, bool has_bias, const std::vector<PostOp>& post) {
  auto conv = std::make_shared<DnnlConv>(geo, has_bias, post);
  // A kernel object runs on one thread at a time (the executor is not re-entrant).
  return [conv](const Tensors& in, Tensors& out) { conv->run(in, out); };
}

}  // namespace autotailor::ops
