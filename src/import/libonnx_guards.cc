#include "libonnx_guards.h"

#include <fmt/format.h>
#include <onnx/defs/shape_inference.h>
#include <onnx/defs/tensor_proto_util.h>

#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <unordered_map>
#include <vector>

#include "autotailor/common/error.h"

namespace autotailor::import_detail {

namespace {

// --- Static checks ------------------------------------------------------------------------

// Bytes per element of a fixed-size type, 0 for STRING, -1 for a type ONNX 1.12 does not have.
int element_bytes(int32_t type) {
  using T = onnx::TensorProto;
  switch (type) {
    case T::UINT8:
    case T::INT8:
    case T::BOOL:
      return 1;
    case T::UINT16:
    case T::INT16:
    case T::FLOAT16:
    case T::BFLOAT16:
      return 2;
    case T::FLOAT:
    case T::INT32:
    case T::UINT32:
      return 4;
    case T::INT64:
    case T::DOUBLE:
    case T::UINT64:
    case T::COMPLEX64:
      return 8;
    case T::COMPLEX128:
      return 16;
    case T::STRING:
      return 0;
    default:
      return -1;
  }
}

// How many values of the typed field a tensor of n elements holds (complex: two per element).
int64_t typed_values(const onnx::TensorProto& t) {
  using T = onnx::TensorProto;
  switch (t.data_type()) {
    case T::FLOAT:
    case T::COMPLEX64:
      return t.float_data_size();
    case T::INT64:
      return t.int64_data_size();
    case T::DOUBLE:
    case T::COMPLEX128:
      return t.double_data_size();
    case T::UINT32:
    case T::UINT64:
      return t.uint64_data_size();
    case T::STRING:
      return t.string_data_size();
    default:
      return t.int32_data_size();
  }
}

void check_tensor(const onnx::TensorProto& t, const std::string& what, const std::string& source) {
  const int bytes = element_bytes(t.data_type());
  if (bytes < 0)
    fail("'{}': {} has data type {}, which ONNX does not define", source, what, t.data_type());
  constexpr int64_t kMaxElements = int64_t{1} << 40;
  int64_t n = 1;
  for (int64_t d : t.dims()) {
    if (d < 0) fail("'{}': {} has a negative dimension ({})", source, what, d);
    if (d > 0 && n > kMaxElements / d)
      fail("'{}': {} claims more than 2^40 elements", source, what);
    n *= d;
  }
  if (t.data_location() == onnx::TensorProto::EXTERNAL) return;  // read (and sized) later
  if (n == 0) return;  // the checker refuses data in an empty tensor
  const int64_t per = t.data_type() == onnx::TensorProto::COMPLEX64 ||
                              t.data_type() == onnx::TensorProto::COMPLEX128
                          ? 2
                          : 1;
  if (!t.raw_data().empty()) {
    if (bytes == 0) return;  // the checker refuses strings in raw_data
    if (static_cast<int64_t>(t.raw_data().size()) != n * bytes)
      fail("'{}': {} holds {} bytes of raw data, but its dims imply {} elements of {} bytes",
           source, what, t.raw_data().size(), n, bytes);
  } else if (typed_values(t) != n * per) {
    fail("'{}': {} holds {} values, but its dims imply {}", source, what, typed_values(t), n * per);
  }
}

void check_graph_data(const onnx::GraphProto& g, const std::string& where,
                      const std::string& source) {
  for (const auto& v : g.input())
    if (v.name().empty()) fail("'{}': {} has an input with an empty name", source, where);
  for (const auto& t : g.initializer()) {
    if (t.name().empty()) fail("'{}': {} has an initializer with an empty name", source, where);
    check_tensor(t, fmt::format("initializer '{}'", t.name()), source);
  }
  if (g.sparse_initializer_size() > 0)
    fail("'{}': {} has sparse initializers, which autotailor does not support", source, where);
  for (int i = 0; i < g.node_size(); ++i) {
    const onnx::NodeProto& n = g.node(i);
    std::string node = n.name().empty() ? fmt::format("#{}", i) : "'" + n.name() + "'";
    for (const onnx::AttributeProto& a : n.attribute()) {
      std::string what = fmt::format("{} node {}'s attribute {}", n.op_type(), node, a.name());
      if (a.has_t()) check_tensor(a.t(), what, source);
      for (const auto& t : a.tensors()) check_tensor(t, what, source);
      if (a.has_sparse_tensor() || a.sparse_tensors_size() > 0)
        fail("'{}': {} is a sparse tensor, which autotailor does not support", source, what);
      if (a.has_g()) check_graph_data(a.g(), what, source);
      for (const auto& sg : a.graphs()) check_graph_data(sg, what, source);
    }
  }
}

// Local functions that call each other in a cycle make libonnx recurse without end.
void check_function_calls(const onnx::ModelProto& m, const std::string& source) {
  std::map<std::string, const onnx::FunctionProto*> fns;
  for (const auto& f : m.functions()) fns[f.domain() + ":" + f.name()] = &f;
  std::map<std::string, int> state;  // 1: on the path, 2: done
  std::function<void(const std::string&)> visit;
  std::function<void(const onnx::NodeProto&)> calls = [&](const onnx::NodeProto& n) {
    std::string key = n.domain() + ":" + n.op_type();
    if (fns.count(key)) visit(key);
    for (const auto& a : n.attribute()) {
      if (a.has_g())
        for (const auto& sn : a.g().node()) calls(sn);
      for (const auto& sg : a.graphs())
        for (const auto& sn : sg.node()) calls(sn);
    }
  };
  visit = [&](const std::string& key) {
    int& s = state[key];
    if (s == 2) return;
    if (s == 1) fail("'{}': local function '{}' calls itself", source, key);
    s = 1;
    for (const auto& n : fns[key]->node()) calls(n);
    state[key] = 2;
  };
  for (const auto& kv : fns) visit(kv.first);
  for (const auto& f : m.functions())
    for (const auto& n : f.node())
      for (const auto& a : n.attribute()) {
        if (a.has_t()) check_tensor(a.t(), "a tensor in local function '" + f.name() + "'", source);
        if (a.has_g()) check_graph_data(a.g(), "a subgraph in local function " + f.name(), source);
      }
}

// --- Checks on the live inference context -------------------------------------------------

[[noreturn]] void refuse(const std::string& msg) {
  throw onnx::InferenceError("[ShapeInferenceError] " + msg);
}

const onnx::TypeProto* input_type(onnx::InferenceContext& ctx, size_t k) {
  return k < ctx.getNumInputs() ? ctx.getInputType(k) : nullptr;
}

// Rank of input k: -1 when absent, untyped or without a shape. An input of another kind than
// a dense tensor (a sequence, sparse tensor, optional or map) is refused: none of the guarded
// operators takes one there, and libonnx would read its default (empty) tensor shape.
int rank_of(onnx::InferenceContext& ctx, size_t k, const char* name) {
  const onnx::TypeProto* t = input_type(ctx, k);
  if (!t || t->value_case() == onnx::TypeProto::VALUE_NOT_SET) return -1;
  if (!t->has_tensor_type()) refuse(fmt::format("input {} ({}) is not a tensor", k, name));
  return t->tensor_type().has_shape() ? t->tensor_type().shape().dim_size() : -1;
}

const onnx::TensorShapeProto& shape_of(onnx::InferenceContext& ctx, size_t k) {
  return ctx.getInputType(k)->tensor_type().shape();
}

int64_t int_attr(onnx::InferenceContext& ctx, const char* name, int64_t fallback) {
  const onnx::AttributeProto* a = ctx.getAttribute(name);
  return a && a->has_i() ? a->i() : fallback;
}

void need_rank(onnx::InferenceContext& ctx, size_t k, const char* name, int lo, int hi,
               const char* op) {
  int r = rank_of(ctx, k, name);
  if (r < 0 || (r >= lo && r <= hi)) return;
  refuse(lo == hi ? fmt::format("input {} ({}) has rank {}; {} needs rank {}", k, name, r, op, lo)
                  : fmt::format("input {} ({}) has rank {}; {} needs rank {} to {}", k, name, r, op,
                                lo, hi));
}

// Conv, ConvTranspose, ConvInteger, QLinearConv, DeformConv and the pools: X and W (when the
// op has one) of equal rank >= 3, window attributes sized for that rank, and spatial sizes
// libonnx's auto_pad loop (one subtraction per stride) gets through.
void check_window(onnx::InferenceContext& ctx, const std::string& op, int w) {
  int rx = rank_of(ctx, 0, "X");
  int rw = w >= 0 ? rank_of(ctx, w, "W") : -1;
  if (rw >= 0 && rw < 3) refuse(fmt::format("W has rank {}, needs at least 3", rw));
  if (rx >= 0 && rx < 3) refuse(fmt::format("X has rank {}, needs at least 3 (N, C, spatial)", rx));
  if (rx >= 0 && rw >= 0 && rx != rw)
    refuse(fmt::format("X has rank {} but W has rank {}", rx, rw));
  if (rx < 0) return;
  for (const auto& d : shape_of(ctx, 0).dim())
    if (d.has_dim_value() && (d.dim_value() < 0 || d.dim_value() > (int64_t{1} << 31)))
      refuse(fmt::format("X has a dimension of {}", d.dim_value()));
  // libonnx reads MaxUnpool's channel count from the indices' second dimension unchecked.
  const int ri = op == "MaxUnpool" ? rank_of(ctx, 1, "I") : rx;
  if (ri != rx)
    refuse(ri < 0 ? std::string("the rank of I (the indices) is unknown; it must be X's")
                  : fmt::format("I (the indices) has rank {} but X has rank {}", ri, rx));
  const int spatial = rx - 2;
  for (const char* an :
       {"pads", "output_shape", "kernel_shape", "strides", "dilations", "output_padding"}) {
    const onnx::AttributeProto* a = ctx.getAttribute(an);
    if (!a) continue;
    int got = a->ints_size();
    std::string name = an;
    bool ok = name == "pads"           ? got == 2 * spatial
              : name == "output_shape" ? got == spatial || got == rx
                                       : got == spatial;
    if (!ok)
      refuse(fmt::format("attribute {} has {} values, which does not fit an input of rank {}", name,
                         got, rx));
    // libonnx divides by strides (an FPE on 0). The importer checks these in the main graph
    // before inference; this covers subgraphs too.
    if (name == "strides" || name == "dilations" || name == "kernel_shape")
      for (int64_t v : a->ints())
        if (v < 1) refuse(fmt::format("attribute {} has {} (must be >= 1)", name, v));
  }
}

using Check = std::function<void(onnx::InferenceContext&, const onnx::OpSchema&)>;

// What each operator's inference in libonnx 1.12 assumes without checking (ai.onnx unless
// the key names a domain).
const std::map<std::string, Check>& checks() {
  static const std::map<std::string, Check> table = [] {
    std::map<std::string, Check> t;
    const std::map<std::string, int> windows = {
        {"Conv", 1},         {"ConvTranspose", 1}, {"ConvInteger", 1},
        {"QLinearConv", 3},  {"DeformConv", 1},    {"MaxPool", -1},
        {"AveragePool", -1}, {"LpPool", -1},       {"MaxUnpool", -1}};
    for (const auto& [op, w] : windows) {
      std::string name = op;
      int wi = w;
      t[op] = [name, wi](onnx::InferenceContext& ctx, const onnx::OpSchema&) {
        check_window(ctx, name, wi);
      };
    }
    // RNN-1, GRU-3 and LSTM-1 read X's first two dimensions unchecked.
    for (const char* op : {"RNN", "GRU", "LSTM"}) {
      std::string name = op;
      t[op] = [name](onnx::InferenceContext& ctx, const onnx::OpSchema&) {
        need_rank(ctx, 0, "X", 3, 3, name.c_str());
      };
    }
    t["Gemm"] = [](onnx::InferenceContext& ctx, const onnx::OpSchema&) {
      need_rank(ctx, 0, "A", 2, 2, "Gemm");
      need_rank(ctx, 1, "B", 2, 2, "Gemm");
    };
    t["STFT"] = [](onnx::InferenceContext& ctx, const onnx::OpSchema&) {
      need_rank(ctx, 0, "signal", 3, 3, "STFT");
    };
    t["LayerNormalization"] = [](onnx::InferenceContext& ctx, const onnx::OpSchema&) {
      int r = rank_of(ctx, 0, "X");
      int64_t axis = int_attr(ctx, "axis", -1);
      if (r == 0) refuse("input 0 (X) is a scalar; LayerNormalization needs rank >= 1");
      if (r > 0 && (axis < -r || axis >= r))
        refuse(
            fmt::format("attribute axis is {}, outside [-{}, {}) for X of rank {}", axis, r, r, r));
    };
    t["MaxRoiPool"] = [](onnx::InferenceContext& ctx, const onnx::OpSchema&) {
      need_rank(ctx, 0, "X", 4, 4, "MaxRoiPool");
      const onnx::AttributeProto* a = ctx.getAttribute("pooled_shape");
      if (!a || a->ints_size() != 2) refuse("attribute pooled_shape must have 2 values");
    };
    t["GatherND"] = [](onnx::InferenceContext& ctx, const onnx::OpSchema&) {
      int r = rank_of(ctx, 0, "data"), q = rank_of(ctx, 1, "indices");
      int64_t b = int_attr(ctx, "batch_dims", 0);
      if (b < 0) refuse(fmt::format("attribute batch_dims is {}", b));
      if (r < 0 || q < 0) return;
      if (q < 1 || b >= std::min(r, q))
        refuse(fmt::format("batch_dims {} does not fit data of rank {} and indices of rank {}", b,
                           r, q));
      const auto& last = shape_of(ctx, 1).dim(q - 1);
      if (last.has_dim_value() && (last.dim_value() < 0 || last.dim_value() + b > r))
        refuse(fmt::format("indices' last dimension {} with batch_dims {} exceeds data's rank {}",
                           last.dim_value(), b, r));
    };
    t["Einsum"] = [](onnx::InferenceContext& ctx, const onnx::OpSchema&) {
      const onnx::AttributeProto* a = ctx.getAttribute("equation");
      std::string eq = a ? a->s() : "";
      size_t arrow = eq.find("->");
      for (size_t i = 0; i < eq.size(); ++i) {
        char c = eq[i];
        bool ok = (c >= 'a' && c <= 'z') || c == ',' || c == '.' || c == ' ' ||
                  (arrow != std::string::npos && (i == arrow || i == arrow + 1));
        if (!ok)
          refuse(fmt::format("equation '{}' has a character outside a-z, ',', '.', '->'", eq));
      }
    };
    for (const char* op : {"DepthToSpace", "SpaceToDepth"}) {
      t[op] = [](onnx::InferenceContext& ctx, const onnx::OpSchema&) {
        int64_t b = int_attr(ctx, "blocksize", 1);
        if (b < 1 || b > 65536) refuse(fmt::format("attribute blocksize is {}", b));
      };
    }
    t["Split"] = [](onnx::InferenceContext& ctx, const onnx::OpSchema&) {
      if (ctx.getNumOutputs() == 0) refuse("Split needs at least one output");
    };
    t["SplitToSequence"] = [](onnx::InferenceContext& ctx, const onnx::OpSchema&) {
      const onnx::TensorProto* s = ctx.getNumInputs() > 1 ? ctx.getInputData(1) : nullptr;
      if (!s || s->dims_size() != 0) return;
      std::vector<int64_t> v;
      if (s->data_type() == onnx::TensorProto::INT64) v = onnx::ParseData<int64_t>(s);
      for (int32_t x : s->data_type() == onnx::TensorProto::INT32 ? onnx::ParseData<int32_t>(s)
                                                                  : std::vector<int32_t>())
        v.push_back(x);
      if (v.size() != 1 || v[0] <= 0) refuse("a scalar split must be positive");
    };
    t["Reshape"] = [](onnx::InferenceContext& ctx, const onnx::OpSchema&) {
      const onnx::TensorProto* s = ctx.getNumInputs() > 1 ? ctx.getInputData(1) : nullptr;
      if (!s || s->data_type() != onnx::TensorProto::INT64) return;
      int64_t product = 1;
      for (int64_t v : onnx::ParseData<int64_t>(s)) {
        if (v < -1) refuse(fmt::format("the target shape has {}", v));
        if (v > 0 && product > (int64_t{1} << 62) / v)
          refuse("the target shape has more than 2^62 elements");
        if (v > 0) product *= v;
      }
    };
    for (const auto& [op, k] : std::map<std::string, int>{{"Expand", 1}, {"ConstantOfShape", 0}}) {
      size_t idx = k;
      t[op] = [idx](onnx::InferenceContext& ctx, const onnx::OpSchema&) {
        if (rank_of(ctx, idx, "shape") != 1) return;
        const auto& d = shape_of(ctx, idx).dim(0);
        if (d.has_dim_value() && d.dim_value() > 64)
          refuse(fmt::format("the shape input has {} values (more than 64 dimensions)",
                             d.dim_value()));
      };
    }
    t["Scan"] = [](onnx::InferenceContext& ctx, const onnx::OpSchema& s) {
      int64_t m = int_attr(ctx, "num_scan_inputs", -1);
      int64_t n = static_cast<int64_t>(ctx.getNumInputs()) - (s.SinceVersion() == 8 ? 1 : 0);
      if (m < 1 || m > n)
        refuse(fmt::format("num_scan_inputs is {} for {} inputs", m, ctx.getNumInputs()));
      if (static_cast<int64_t>(ctx.getNumOutputs()) < n - m)
        refuse(fmt::format("{} outputs for {} loop state variables", ctx.getNumOutputs(), n - m));
    };
    // These dereference input 0's type without checking that it has one.
    for (const char* op : {"EyeLike", "ai.onnx.ml:LabelEncoder", "ai.onnx.ml:CategoryMapper",
                           "ai.onnx.ml:DictVectorizer"}) {
      t[op] = [](onnx::InferenceContext& ctx, const onnx::OpSchema&) {
        if (!input_type(ctx, 0)) refuse("input 0's type is unknown");
      };
    }
    return t;
  }();
  return table;
}

// Every node: the dimensions of its tensor inputs are sizes (0 to 2^40), as ONNX requires;
// libonnx's arithmetic on them (products, divisions) assumes so.
void check_dims(onnx::InferenceContext& ctx) {
  for (size_t k = 0; k < ctx.getNumInputs(); ++k) {
    const onnx::TypeProto* t = ctx.getInputType(k);
    if (!t || !t->has_tensor_type() || !t->tensor_type().has_shape()) continue;
    for (const auto& d : t->tensor_type().shape().dim())
      if (d.has_dim_value() && (d.dim_value() < 0 || d.dim_value() > (int64_t{1} << 40)))
        refuse(fmt::format("input {} has a dimension of {}", k, d.dim_value()));
  }
}

// Data propagation (shape arithmetic on Shape's outputs) that would read past its data: skip
// it for that node; inference then knows less, never something wrong.
bool propagation_is_safe(onnx::DataPropagationContext& ctx, const std::string& op) {
  if (op == "Add" || op == "Sub" || op == "Mul") {
    for (size_t k = 0; k < ctx.getNumInputs() && k < 2; ++k) {
      const onnx::TensorShapeProto* d = ctx.getInputData(k);
      if (d && d->dim_size() == 0) return false;
    }
  }
  if (op == "Shape") return ctx.getNumInputs() > 0 && ctx.getInputType(0) != nullptr;
  // Slice-13 steps through shape data with an int counter that large steps overflow.
  if (op == "Slice") return ctx.getNumInputs() < 5;
  return true;
}

class GuardedRegistry final : public onnx::ISchemaRegistry {
 public:
  const onnx::OpSchema* GetSchema(const std::string& key, const int max_version,
                                  const std::string& domain) const override {
    const onnx::OpSchema* s =
        onnx::OpSchemaRegistry::Instance()->GetSchema(key, max_version, domain);
    if (!s) return nullptr;
    std::lock_guard<std::mutex> lock(mutex_);
    std::unique_ptr<onnx::OpSchema>& slot = wrapped_[s];
    if (!slot) slot = wrap(*s);
    return slot.get();
  }

 private:
  static std::unique_ptr<onnx::OpSchema> wrap(const onnx::OpSchema& s) {
    auto copy = std::make_unique<onnx::OpSchema>(s);
    std::string key =
        s.domain().empty() || s.domain() == "ai.onnx" ? s.Name() : s.domain() + ":" + s.Name();
    if (s.has_type_and_shape_inference_function()) {
      onnx::InferenceFunction original = s.GetTypeAndShapeInferenceFunction();
      auto it = checks().find(key);
      Check check = it == checks().end() ? Check() : it->second;
      const onnx::OpSchema* schema = copy.get();
      copy->TypeAndShapeInferenceFunction([original, check, schema](onnx::InferenceContext& ctx) {
        check_dims(ctx);
        if (check) check(ctx, *schema);
        original(ctx);
      });
    }
    if (s.has_data_propagation_function()) {
      onnx::DataPropagationFunction original = s.GetDataPropagationFunction();
      std::string op = key;
      copy->PartialDataPropagationFunction([original, op](onnx::DataPropagationContext& ctx) {
        if (propagation_is_safe(ctx, op)) original(ctx);
      });
    }
    return copy;
  }

  mutable std::mutex mutex_;
  mutable std::unordered_map<const onnx::OpSchema*, std::unique_ptr<onnx::OpSchema>> wrapped_;
};

}  // namespace

void check_model_data(const onnx::ModelProto& m, const std::string& source) {
  check_graph_data(m.graph(), "the graph", source);
  check_function_calls(m, source);
}

const onnx::ISchemaRegistry* guarded_schemas() {
  static const GuardedRegistry registry;
  return &registry;
}

}  // namespace autotailor::import_detail
