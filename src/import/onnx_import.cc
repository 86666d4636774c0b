#include "autotailor/import/onnx_import.h"

#include <google/protobuf/stubs/logging.h>
#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/shape_inference/implementation.h>
#include <charconv>
#include <cmath>
#include <limits>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "../export/model_proto.h"
#include "autotailor/common/error.h"
#include "autotailor/common/files.h"
#include "autotailor/ops/ops.h"
#include "libonnx_guards.h"
#include "proto_convert.h"

namespace autotailor {

namespace {

std::string first_line(const std::string& s) {
  std::string line = s.substr(0, s.find('\n'));
  // libonnx prefixes some messages with "[ShapeInferenceError] "; keep them, they say what failed.
  return line;
}

// RFC 3629 UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
bool valid_utf8(const std::string& s) {
  size_t i = 0, n = s.size();
  auto cont = [&](size_t k) { return k < n && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80; };
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      i += 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      if (!cont(i + 1)) return false;
      i += 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      unsigned char d = i + 1 < n ? static_cast<unsigned char>(s[i + 1]) : 0;
      if (!cont(i + 1) || !cont(i + 2) || (c == 0xE0 && d < 0xA0) || (c == 0xED && d > 0x9F))
        return false;
      i += 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      unsigned char d = i + 1 < n ? static_cast<unsigned char>(s[i + 1]) : 0;
      if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3) || (c == 0xF0 && d < 0x90) ||
          (c == 0xF4 && d > 0x8F))
        return false;
      i += 4;
    } else {
      return false;
    }
  }
  return true;
}

// Names travel into JSON (space.json, manifests), IR dumps and messages, which must be text:
// ONNX's proto2 strings are not checked by protobuf, so check them here, fuzzer-found.
void check_names_are_text(const onnx::ModelProto& m, const std::string& source) {
  auto check = [&](const std::string& s, const std::string& what) {
    if (!valid_utf8(s)) fail("'{}': {} is not valid UTF-8 text", source, what);
  };
  const onnx::GraphProto& gp = m.graph();
  check(gp.name(), "the graph's name");
  check(m.producer_name(), "the producer name");
  check(m.producer_version(), "the producer version");
  for (const auto& op : m.opset_import()) check(op.domain(), "an opset domain");
  for (const auto* list : {&gp.input(), &gp.output(), &gp.value_info()})
    for (const auto& v : *list) check(v.name(), "a graph input, output or value_info name");
  for (const auto& t : gp.initializer()) check(t.name(), "an initializer name");
  for (int i = 0; i < gp.node_size(); ++i) {
    const onnx::NodeProto& n = gp.node(i);
    std::string what = fmt::format("node #{}'s", i);
    check(n.name(), what + " name");
    check(n.op_type(), what + " op_type");
    check(n.domain(), what + " domain");
    for (const auto& t : n.input()) check(t, what + " input name");
    for (const auto& t : n.output()) check(t, what + " output name");
    for (const auto& a : n.attribute()) check(a.name(), what + " attribute name");
  }
}

// A non-negative decimal integer of an external_data entry, or a one-line error naming it.
int64_t external_data_number(const std::string& text, const std::string& key,
                             const std::string& source, const std::string& tensor) {
  int64_t v = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < 0)
    fail("'{}': initializer '{}' has an invalid external data {} '{}' (a non-negative integer)",
         source, tensor, key, text);
  return v;
}

// The bytes a tensor of this type and shape holds, or -1 where the type has no fixed size.
int64_t declared_bytes(const onnx::TensorProto& t, const std::string& source) {
  auto elem = static_cast<int64_t>(ir::dtype_size(static_cast<ir::DType>(t.data_type())));
  if (elem == 0) return -1;
  std::optional<int64_t> n = ir::checked_numel(ir::Shape(t.dims().begin(), t.dims().end()), elem);
  if (!n)
    fail("'{}': initializer '{}' has dimensions whose product is negative or overflows", source,
         t.name());
  return *n * elem;
}

// Where an external data file really is: inside the model's folder (after every symbolic link
// is resolved, so a link cannot lead out of it), and a regular file (a FIFO or device would
// block or never end).
std::filesystem::path external_data_file(const std::filesystem::path& dir,
                                         const std::string& location, const std::string& source,
                                         const std::string& tensor) {
  namespace fs = std::filesystem;
  if (location.empty() || fs::path(location).is_absolute() ||
      location.find("..") != std::string::npos)
    fail("'{}': initializer '{}' has an invalid external data location '{}'", source, tensor,
         location);
  std::error_code ec;
  fs::path root = fs::canonical(dir.empty() ? fs::path(".") : dir, ec);
  if (ec) fail("'{}': cannot resolve the model's folder: {}", source, ec.message());
  fs::path real = fs::canonical(dir / location, ec);
  if (ec)
    fail("'{}': initializer '{}' needs external data file '{}', which cannot be opened ({})",
         source, tensor, (dir / location).string(), ec.message());
  auto [r, _] = std::mismatch(root.begin(), root.end(), real.begin(), real.end());
  if (r != root.end())
    fail(
        "'{}': initializer '{}': external data '{}' resolves to '{}', outside the model's folder "
        "'{}'; copy the file into that folder",
        source, tensor, location, real.string(), root.string());
  if (!fs::is_regular_file(real, ec))
    fail("'{}': initializer '{}': external data '{}' is not a regular file", source, tensor,
         location);
  return real;
}

// External data is read into the model before checking, so that the rest of the importer
// (and the checker) sees one self-contained ModelProto.
void inline_external_data(onnx::ModelProto& m, const std::string& source) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(source).parent_path();
  for (onnx::TensorProto& t : *m.mutable_graph()->mutable_initializer()) {
    if (t.data_location() != onnx::TensorProto::EXTERNAL) continue;
    std::string location;
    int64_t offset = 0, length = -1;
    for (const auto& kv : t.external_data()) {
      if (kv.key() == "location") location = kv.value();
      if (kv.key() == "offset")
        offset = external_data_number(kv.value(), "offset", source, t.name());
      if (kv.key() == "length")
        length = external_data_number(kv.value(), "length", source, t.name());
    }
    fs::path file = external_data_file(dir, location, source, t.name());
    std::error_code ec;
    const auto size = static_cast<int64_t>(fs::file_size(file, ec));
    if (ec) fail("'{}': cannot read the size of '{}': {}", source, file.string(), ec.message());
    if (offset > size)
      fail("'{}': external data for '{}' starts at {}, beyond the end of '{}' ({} bytes)", source,
           t.name(), offset, file.string(), size);
    if (length < 0) length = size - offset;
    if (length > size - offset)
      fail("'{}': external data for '{}' lies beyond the end of '{}'", source, t.name(),
           file.string());
    const int64_t want = declared_bytes(t, source);
    if (want >= 0 && length != want)
      fail("'{}': external data for '{}' is {} bytes, but its type and shape need {}", source,
           t.name(), length, want);
    std::ifstream in(file, std::ios::binary);
    if (!in)
      fail("'{}': initializer '{}' needs external data file '{}', which cannot be opened", source,
           t.name(), file.string());
    std::string data(static_cast<size_t>(length), '\0');
    in.seekg(offset);
    in.read(data.data(), length);
    if (in.gcount() != length)
      fail("'{}': external data for '{}': '{}' changed while it was read", source, t.name(),
           file.string());
    t.set_raw_data(std::move(data));
    t.clear_external_data();
    t.set_data_location(onnx::TensorProto::DEFAULT);
  }
}

// A symbolic first dimension of an input is the batch: fixed to 1 for analysis, any size at
// run time. Any other symbolic dimension is refused: the search space depends on sizes.
bool fix_input_batch(onnx::ModelProto& m, const std::string& source, bool free_batch) {
  std::unordered_map<std::string, bool> is_init;
  for (const auto& t : m.graph().initializer()) is_init[t.name()] = true;
  bool symbolic = false;
  for (onnx::ValueInfoProto& v : *m.mutable_graph()->mutable_input()) {
    if (is_init.count(v.name())) continue;
    if (!v.type().has_tensor_type())
      unsupported("'{}': input '{}' has {} type; only tensor inputs are supported", source,
                  v.name(),
                  v.type().has_sequence_type()   ? "a sequence"
                  : v.type().has_optional_type() ? "an optional"
                  : v.type().has_map_type()      ? "a map"
                                                 : "a non-tensor");
    auto* shape = v.mutable_type()->mutable_tensor_type()->mutable_shape();
    if (!v.type().tensor_type().has_shape())
      fail("'{}': input '{}' has no shape; export with a fixed input size", source, v.name());
    for (int d = 0; d < shape->dim_size(); ++d) {
      auto* dim = shape->mutable_dim(d);
      if (free_batch && d == 0 && dim->has_dim_value() && dim->dim_value() > 1) {
        dim->set_dim_value(1);
        symbolic = true;
        continue;
      }
      if (dim->has_dim_value() && dim->dim_value() >= 0) continue;  // 0 is a valid size
      if (d == 0) {
        dim->set_dim_value(1);
        symbolic = true;
        continue;
      }
      fail(
          "'{}': input '{}' has a dynamic dimension {} ('{}'); autotailor needs fixed sizes "
          "apart from the batch: re-export with a static input shape",
          source, v.name(), d, dim->has_dim_param() ? dim->dim_param() : "?");
    }
  }
  // Outputs may declare the batch symbolically; inference fills in the rest.
  if (free_batch && symbolic)
    for (onnx::ValueInfoProto& v : *m.mutable_graph()->mutable_output())
      if (v.type().has_tensor_type() && v.type().tensor_type().has_shape() &&
          v.type().tensor_type().shape().dim_size() > 0)
        v.mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(0)->set_dim_param(
            "batch");
  m.mutable_graph()->clear_value_info();
  return symbolic;
}

void run_libonnx_inference(onnx::ModelProto& m) {
  // Operator type constraints are not enforced: old exporters (PyTorch at opset <= 6) emit
  // e.g. int64 Constants that the kernels run fine; a real type clash still fails in a kernel.
  onnx::ShapeInferenceOptions opt(/*check_type=*/false, /*error_mode=*/1, /*data_prop=*/true);
  onnx::shape_inference::InferShapes(m, import_detail::guarded_schemas(), opt);
}

// libonnx 1.12 divides by strides and dilations in its conv and pool shape inference without
// checking them (an FPE on stride 0, found by the fuzzer). The ONNX spec requires strides,
// dilations and kernel sizes >= 1, pads >= 0 and group >= 1 wherever those attributes appear:
// check them first, naming the node.
void check_window_attributes(const onnx::ModelProto& m, const std::string& source) {
  const onnx::GraphProto& gp = m.graph();
  for (int i = 0; i < gp.node_size(); ++i) {
    const onnx::NodeProto& n = gp.node(i);
    std::string name = n.name().empty() ? fmt::format("#{}", i) : "'" + n.name() + "'";
    for (const onnx::AttributeProto& a : n.attribute()) {
      int64_t least = a.name() == "pads" ? 0 : 1;
      // (Pad-2's "pads" may be negative: it crops.)
      bool window = a.name() == "strides" || a.name() == "dilations" ||
                    a.name() == "kernel_shape" || (a.name() == "pads" && n.op_type() != "Pad");
      if (window)
        for (int64_t v : a.ints())
          if (v < least)
            fail("'{}': {} node {}: attribute {} has {} (must be >= {})", source, n.op_type(), name,
                 a.name(), v, least);
      if (a.name() == "group" && a.has_i() && a.i() < 1)
        fail("'{}': {} node {}: attribute group is {} (must be >= 1)", source, n.op_type(), name,
             a.i());
    }
  }
}

void infer_shapes(onnx::ModelProto& m, const std::string& source) {
  check_window_attributes(m, source);
  try {
    run_libonnx_inference(m);
  } catch (const std::exception& e) {
    fail("'{}': ONNX shape inference failed: {}", source, first_line(e.what()));
  }
}

struct TypeInfo {
  ir::DType dtype = ir::DType::Undefined;
  ir::Shape shape;
  bool known = false;
};

TypeInfo type_of(const onnx::ValueInfoProto& v) {
  TypeInfo info;
  if (!v.type().has_tensor_type()) return info;
  const auto& tt = v.type().tensor_type();
  info.dtype = static_cast<ir::DType>(tt.elem_type());
  if (!tt.has_shape()) return info;
  info.known = true;
  for (const auto& d : tt.shape().dim()) {
    if (!d.has_dim_value() || d.dim_value() < 0) info.known = false;
    info.shape.push_back(d.has_dim_value() ? d.dim_value() : -1);
  }
  return info;
}

void collect_types(const onnx::GraphProto& gp, std::unordered_map<std::string, TypeInfo>* types) {
  for (const auto& v : gp.input()) (*types)[v.name()] = type_of(v);
  for (const auto& v : gp.value_info()) (*types)[v.name()] = type_of(v);
  for (const auto& v : gp.output()) {
    TypeInfo t = type_of(v);
    auto it = types->find(v.name());
    if (it == types->end() || !it->second.known || t.known) (*types)[v.name()] = t;
  }
}

void apply_type(ir::Tensor& t, const TypeInfo& info) {
  if (t.is_const()) return;
  if (info.dtype != ir::DType::Undefined) t.dtype = info.dtype;
  t.shape = info.shape;
  t.shape_known = info.known;
}

std::shared_ptr<ir::Graph> build_graph(const onnx::ModelProto& m, const std::string& source,
                                       bool symbolic_batch) {
  auto g = std::make_shared<ir::Graph>();
  const onnx::GraphProto& gp = m.graph();
  g->source = source;
  g->name = gp.name();
  g->ir_version = m.ir_version();
  g->producer_name = m.producer_name();
  g->producer_version = m.producer_version();
  g->symbolic_batch = symbolic_batch;
  for (const auto& op : m.opset_import())
    g->opsets[op.domain() == "ai.onnx" ? "" : op.domain()] = op.version();

  std::unordered_map<std::string, TypeInfo> types;
  collect_types(gp, &types);

  for (const onnx::TensorProto& init : gp.initializer()) {
    ir::Tensor t;
    t.name = init.name();
    t.value = proto::to_const(init, "'" + source + "' initializer '" + init.name() + "'");
    if (t.value->dtype == ir::DType::Float32) {
      // A weight that is NaN or infinite poisons every output, every statistic and every
      // importance ranking after it: refuse it here, by name.
      const float* v = t.value->data<float>();
      for (int64_t i = 0, n = t.value->numel(); i < n; ++i)
        if (!std::isfinite(v[i]))
          fail("'{}': initializer '{}' holds a non-finite value ({} at index {})", source,
               init.name(), v[i], i);
    }
    t.dtype = t.value->dtype;
    t.shape = t.value->shape;
    g->add_tensor(std::move(t));
  }
  for (const auto& v : gp.input()) {
    if (g->find(v.name()) >= 0) continue;  // an initializer listed as input (IR < 4)
    ir::Tensor t;
    t.name = v.name();
    apply_type(t, types[v.name()]);
    g->inputs.push_back(g->add_tensor(std::move(t)));
  }
  std::set<std::string> node_names;
  for (int i = 0; i < gp.node_size(); ++i) {
    const onnx::NodeProto& np = gp.node(i);
    ir::Node n;
    n.name = np.name().empty() ? np.op_type() + "_" + std::to_string(i) : np.name();
    // Later stages name width groups, blocks and kernels after nodes: keep names unique.
    if (!node_names.insert(n.name).second) {
      n.name = fmt::format("{}_{}", n.name, i);
      node_names.insert(n.name);
    }
    n.op_type = np.op_type();
    n.domain = np.domain() == "ai.onnx" ? "" : np.domain();
    std::string where = fmt::format("'{}' node {} '{}'", source, i, n.name);
    for (const auto& in : np.input()) {
      if (in.empty()) {
        n.inputs.push_back(-1);
        continue;
      }
      int id = g->find(in);
      if (id < 0) fail("{}: input '{}' is not defined before use", where, in);
      n.inputs.push_back(id);
    }
    for (const auto& out : np.output()) {
      if (out.empty()) {
        n.outputs.push_back(-1);
        continue;
      }
      ir::Tensor t;
      t.name = out;
      auto it = types.find(out);
      if (it != types.end())
        apply_type(t, it->second);
      else
        t.shape_known = false;
      n.outputs.push_back(g->add_tensor(std::move(t)));
    }
    for (const auto& a : np.attribute()) n.attrs[a.name()] = proto::to_attribute(a, where);
    g->nodes.push_back(std::move(n));
  }
  for (const auto& v : gp.output()) {
    int id = g->find(v.name());
    if (id < 0) fail("'{}': graph output '{}' is not produced by any node", source, v.name());
    g->outputs.push_back(id);
  }
  if (g->outputs.empty()) fail("'{}': the graph has no outputs: it computes nothing", source);
  g->relink();
  return g;
}

std::vector<int> unknown_shapes(const ir::Graph& g) {
  std::vector<int> ids;
  for (const ir::Node& n : g.nodes)
    for (int o : n.outputs)
      if (o >= 0 && !g.tensor(o).is_const() &&
          (!g.tensor(o).shape_known || g.tensor(o).dtype == ir::DType::Undefined))
        ids.push_back(o);
  return ids;
}

// Folding can turn shapes that inference could not see through (Shape -> Gather -> Concat ->
// Reshape) into constants; a second inference pass over the folded graph then resolves them.
void resolve_remaining_shapes(ir::Graph& g) {
  if (unknown_shapes(g).empty()) return;
  onnx::ModelProto m;
  to_model_proto(g, &m, false);
  infer_shapes(m, g.source);
  std::unordered_map<std::string, TypeInfo> types;
  collect_types(m.graph(), &types);
  for (int id : unknown_shapes(g)) {
    auto it = types.find(g.tensor(id).name);
    if (it != types.end()) apply_type(g.tensor(id), it->second);
  }
  for (int id : unknown_shapes(g)) {
    const ir::Tensor& t = g.tensor(id);
    const ir::Node& p = g.nodes[t.producer];
    if (!ops::is_supported(p))
      unsupported("{}: operator {}{} (opset {}) is not supported", g.describe(p),
                  p.domain.empty() ? "" : p.domain + ".", p.op_type, g.opset());
    // Shapes that depend on input values (Range over a run-time size, NonZero, ...) and
    // sequence or optional values have no place in a graph analysed at static shapes.
    unsupported(
        "'{}': the shape of '{}' (output of {}) cannot be determined statically; data-dependent "
        "shapes and non-tensor values are not supported",
        g.source, t.name, g.describe(g.nodes[t.producer]));
  }
}

}  // namespace

std::shared_ptr<ir::Graph> import_onnx_bytes(const std::string& bytes, const std::string& source,
                                             const ImportOptions& opt) {
  // Protobuf's own logging would print multi-line messages for malformed input.
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  if (bytes.empty()) fail("'{}' is empty: not an ONNX model", source);
  onnx::ModelProto m;
  if (!m.ParseFromString(bytes))
    fail(
        "'{}' is not an ONNX model: it does not parse as a ModelProto (truncated or another "
        "format?)",
        source);
  if (!m.has_graph() || m.ir_version() <= 0 || m.opset_import_size() == 0)
    fail("'{}' is not an ONNX model: it has no {}", source,
         !m.has_graph()        ? "graph"
         : m.ir_version() <= 0 ? "IR version"
                               : "opset import");
  if (m.graph().node_size() == 0) fail("'{}': the model's graph has no nodes", source);
  check_names_are_text(m, source);
  // libonnx checks nodes against the newest schema it knows: name the real problem first.
  const auto& known = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
  for (const auto& op : m.opset_import()) {
    std::string domain = op.domain() == "ai.onnx" ? "" : op.domain();
    auto it = known.find(domain);
    if (it != known.end() && op.version() > it->second.second)
      fail(
          "'{}' uses opset {} of {}, newer than this build's ONNX supports ({}); re-export with "
          "opset {} or lower",
          source, op.version(), domain.empty() ? "ai.onnx" : domain, it->second.second,
          it->second.second);
  }
  inline_external_data(m, source);
  import_detail::check_model_data(m, source);
  bool symbolic = fix_input_batch(m, source, opt.free_batch);
  try {
    onnx::checker::check_model(m);
  } catch (const std::exception& e) {
    fail("'{}' fails the ONNX checker: {}", source, first_line(e.what()));
  }
  infer_shapes(m, source);
  std::shared_ptr<ir::Graph> g = build_graph(m, source, symbolic);
  m.Clear();  // the graph holds its own copy of the weights
  if (opt.fold_constants) fold_constants(*g);
  resolve_remaining_shapes(*g);
  g->compact();
  // A size limit per tensor, checked before anything is allocated for it: a 2^20 x 2^20 input
  // is a clear error here, not LibTorch's allocator failing later.
  for (const ir::Tensor& t : g->tensors) {
    if (!t.shape_known) continue;
    std::optional<int64_t> n = ir::checked_numel(
        t.shape, std::max<int64_t>(1, static_cast<int64_t>(ir::dtype_size(t.dtype))));
    if (!n || *n > kMaxTensorElements)
      fail("'{}': tensor '{}' of shape {} has more than {} elements, the limit per tensor", source,
           t.name, ir::shape_str(t.shape), kMaxTensorElements);
  }
  return g;
}

std::shared_ptr<ir::Graph> import_onnx(const std::string& path, const ImportOptions& opt) {
  return import_onnx_bytes(read_file(path), path, opt);
}

}  // namespace autotailor
