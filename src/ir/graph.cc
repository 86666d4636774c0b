#include "autotailor/ir/graph.h"

#include <algorithm>
#include <cstring>
#include <queue>

#include "autotailor/common/error.h"

namespace autotailor::ir {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::Float32:
      return "float32";
    case DType::UInt8:
      return "uint8";
    case DType::Int8:
      return "int8";
    case DType::UInt16:
      return "uint16";
    case DType::Int16:
      return "int16";
    case DType::Int32:
      return "int32";
    case DType::Int64:
      return "int64";
    case DType::String:
      return "string";
    case DType::Bool:
      return "bool";
    case DType::Float16:
      return "float16";
    case DType::Float64:
      return "float64";
    case DType::UInt32:
      return "uint32";
    case DType::UInt64:
      return "uint64";
    case DType::BFloat16:
      return "bfloat16";
    case DType::Undefined:
      break;
  }
  return "undefined";
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32:
    case DType::Int32:
    case DType::UInt32:
      return 4;
    case DType::UInt8:
    case DType::Int8:
    case DType::Bool:
      return 1;
    case DType::UInt16:
    case DType::Int16:
    case DType::Float16:
    case DType::BFloat16:
      return 2;
    case DType::Int64:
    case DType::Float64:
    case DType::UInt64:
      return 8;
    case DType::String:
    case DType::Undefined:
      break;
  }
  return 0;
}

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::optional<int64_t> checked_numel(const Shape& s, int64_t element_size) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) return std::nullopt;
  }
  int64_t bytes = 0;
  if (element_size < 0 || __builtin_mul_overflow(n, element_size, &bytes)) return std::nullopt;
  return n;
}

std::string shape_str(const Shape& s) {
  if (s.empty()) return "scalar";
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += 'x';
    out += std::to_string(s[i]);
  }
  return out;
}

namespace {
template <class T>
void append_as(const ConstData& c, std::vector<int64_t>* i64, std::vector<double>* f64) {
  const T* p = c.data<T>();
  for (int64_t k = 0; k < c.numel(); ++k) {
    if (i64) i64->push_back(static_cast<int64_t>(p[k]));
    if (f64) f64->push_back(static_cast<double>(p[k]));
  }
}

void convert(const ConstData& c, std::vector<int64_t>* i64, std::vector<double>* f64) {
  switch (c.dtype) {
    case DType::Float32:
      return append_as<float>(c, i64, f64);
    case DType::Float64:
      return append_as<double>(c, i64, f64);
    case DType::Int64:
      return append_as<int64_t>(c, i64, f64);
    case DType::Int32:
      return append_as<int32_t>(c, i64, f64);
    case DType::Int16:
      return append_as<int16_t>(c, i64, f64);
    case DType::Int8:
      return append_as<int8_t>(c, i64, f64);
    case DType::UInt8:
    case DType::Bool:
      return append_as<uint8_t>(c, i64, f64);
    case DType::UInt16:
      return append_as<uint16_t>(c, i64, f64);
    case DType::UInt32:
      return append_as<uint32_t>(c, i64, f64);
    case DType::UInt64:
      return append_as<uint64_t>(c, i64, f64);
    default:
      unsupported("cannot read {} constant values", dtype_name(c.dtype));
  }
}
}  // namespace

std::vector<int64_t> ConstData::to_int64() const {
  std::vector<int64_t> v;
  convert(*this, &v, nullptr);
  return v;
}

std::vector<double> ConstData::to_double() const {
  std::vector<double> v;
  convert(*this, nullptr, &v);
  return v;
}

std::shared_ptr<const ConstData> ConstData::make(DType t, Shape s, std::vector<std::byte> b) {
  auto c = std::make_shared<ConstData>();
  c->dtype = t;
  c->shape = std::move(s);
  c->bytes = std::make_shared<const std::vector<std::byte>>(std::move(b));
  return c;
}

std::shared_ptr<const ConstData> ConstData::from_int64(const std::vector<int64_t>& v, Shape s) {
  std::vector<std::byte> b(v.size() * sizeof(int64_t));
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return make(DType::Int64, std::move(s), std::move(b));
}

std::shared_ptr<const ConstData> ConstData::from_float(const std::vector<float>& v, Shape s) {
  std::vector<std::byte> b(v.size() * sizeof(float));
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return make(DType::Float32, std::move(s), std::move(b));
}

std::shared_ptr<const ConstData> ConstData::gather(
    const std::vector<std::vector<int64_t>>& select) const {
  const size_t rank = shape.size(), esize = dtype_size(dtype);
  std::vector<std::vector<int64_t>> idx(rank);
  Shape out_shape(rank);
  for (size_t a = 0; a < rank; ++a) {
    if (a < select.size() && !select[a].empty()) {
      idx[a] = select[a];
      for (int64_t i : idx[a])
        if (i < 0 || i >= shape[a]) fail("selection index {} out of range on axis {}", i, a);
    } else {
      for (int64_t i = 0; i < shape[a]; ++i) idx[a].push_back(i);
    }
    out_shape[a] = static_cast<int64_t>(idx[a].size());
  }
  std::vector<int64_t> stride(rank, 1);
  for (size_t a = rank; a-- > 1;) stride[a - 1] = stride[a] * shape[a];
  std::vector<std::byte> out(ir::numel(out_shape) * esize);
  // Odometer over the output; the innermost axis is copied element by element.
  std::vector<size_t> pos(rank, 0);
  const std::byte* src = bytes->data();
  for (size_t o = 0; o < out.size() / std::max<size_t>(esize, 1); ++o) {
    int64_t off = 0;
    for (size_t a = 0; a < rank; ++a) off += idx[a][pos[a]] * stride[a];
    std::memcpy(out.data() + o * esize, src + off * esize, esize);
    for (size_t a = rank; a-- > 0;) {
      if (++pos[a] < idx[a].size()) break;
      pos[a] = 0;
    }
  }
  return make(dtype, out_shape, std::move(out));
}

const Attribute* Node::attr(const std::string& key) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? nullptr : &it->second;
}

int64_t Node::attr_int(const std::string& key, int64_t def) const {
  const Attribute* a = attr(key);
  return a && a->kind == Attribute::Kind::Int ? a->i : def;
}

float Node::attr_float(const std::string& key, float def) const {
  const Attribute* a = attr(key);
  return a && a->kind == Attribute::Kind::Float ? a->f : def;
}

std::string Node::attr_str(const std::string& key, const std::string& def) const {
  const Attribute* a = attr(key);
  return a && a->kind == Attribute::Kind::String ? a->s : def;
}

std::vector<int64_t> Node::attr_ints(const std::string& key, std::vector<int64_t> def) const {
  const Attribute* a = attr(key);
  return a && a->kind == Attribute::Kind::Ints ? a->ints : def;
}

std::vector<float> Node::attr_floats(const std::string& key, std::vector<float> def) const {
  const Attribute* a = attr(key);
  return a && a->kind == Attribute::Kind::Floats ? a->floats : def;
}

int64_t Graph::opset() const {
  auto it = opsets.find("");
  if (it == opsets.end()) it = opsets.find("ai.onnx");
  return it == opsets.end() ? 0 : it->second;
}

int Graph::add_tensor(Tensor t) {
  if (index_.count(t.name)) fail("duplicate tensor name '{}' in {}", t.name, source);
  int id = static_cast<int>(tensors.size());
  index_.emplace(t.name, id);
  tensors.push_back(std::move(t));
  return id;
}

int Graph::find(const std::string& tensor_name) const {
  auto it = index_.find(tensor_name);
  return it == index_.end() ? -1 : it->second;
}

int Graph::unique_tensor(const std::string& stem) {
  std::string name = stem;
  for (int k = 1; index_.count(name); ++k) name = stem + "_" + std::to_string(k);
  Tensor t;
  t.name = name;
  return add_tensor(std::move(t));
}

std::string Graph::describe(const Node& n) const {
  auto idx = &n - nodes.data();
  if (idx >= 0 && static_cast<size_t>(idx) < nodes.size())
    return fmt::format("{} '{}' (node {})", n.op_type, n.name, idx);
  return fmt::format("{} '{}'", n.op_type, n.name);
}

void Graph::relink() {
  const size_t n = nodes.size();
  // Which tensors are live: walk back from the outputs.
  std::vector<int> producer(tensors.size(), -1);
  for (size_t i = 0; i < n; ++i)
    for (int o : nodes[i].outputs)
      if (o >= 0) producer[o] = static_cast<int>(i);
  std::vector<char> live_node(n, 0);
  std::vector<int> stack(outputs.begin(), outputs.end());
  std::vector<char> seen(tensors.size(), 0);
  while (!stack.empty()) {
    int t = stack.back();
    stack.pop_back();
    if (t < 0 || seen[t]) continue;
    seen[t] = 1;
    int p = producer[t];
    if (p >= 0 && !live_node[p]) {
      live_node[p] = 1;
      for (int in : nodes[p].inputs) stack.push_back(in);
    }
  }
  // Stable topological sort of the live nodes (Kahn, smallest original index first).
  std::vector<int> pending(n, 0);
  std::vector<std::vector<int>> users(n);
  for (size_t i = 0; i < n; ++i) {
    if (!live_node[i]) continue;
    for (int in : nodes[i].inputs) {
      if (in < 0 || producer[in] < 0) continue;
      ++pending[i];
      users[producer[in]].push_back(static_cast<int>(i));
    }
  }
  std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
  for (size_t i = 0; i < n; ++i)
    if (live_node[i] && pending[i] == 0) ready.push(static_cast<int>(i));
  std::vector<Node> sorted;
  while (!ready.empty()) {
    int i = ready.top();
    ready.pop();
    sorted.push_back(std::move(nodes[i]));
    for (int u : users[i])
      if (--pending[u] == 0) ready.push(u);
  }
  size_t live = std::count(live_node.begin(), live_node.end(), 1);
  if (sorted.size() != live) fail("graph of {} has a cycle", source);
  nodes = std::move(sorted);

  for (Tensor& t : tensors) {
    t.producer = -1;
    t.consumers.clear();
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (int in : nodes[i].inputs)
      if (in >= 0) tensors[in].consumers.push_back(static_cast<int>(i));
    for (int o : nodes[i].outputs)
      if (o >= 0) tensors[o].producer = static_cast<int>(i);
  }
}

void Graph::compact() {
  std::vector<char> used(tensors.size(), 0);
  for (const Node& nd : nodes) {
    for (int t : nd.inputs)
      if (t >= 0) used[t] = 1;
    for (int t : nd.outputs)
      if (t >= 0) used[t] = 1;
  }
  for (int t : inputs) used[t] = 1;
  for (int t : outputs) used[t] = 1;
  std::vector<int> remap(tensors.size(), -1);
  std::vector<Tensor> kept;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!used[i]) continue;
    remap[i] = static_cast<int>(kept.size());
    kept.push_back(std::move(tensors[i]));
  }
  auto fix = [&](std::vector<int>& ids) {
    for (int& t : ids)
      if (t >= 0) t = remap[t];
  };
  for (Node& nd : nodes) {
    fix(nd.inputs);
    fix(nd.outputs);
  }
  fix(inputs);
  fix(outputs);
  tensors = std::move(kept);
  index_.clear();
  for (size_t i = 0; i < tensors.size(); ++i) index_.emplace(tensors[i].name, static_cast<int>(i));
  relink();
}

int64_t Graph::parameter_count() const {
  int64_t total = 0;
  for (const Tensor& t : tensors)
    if (t.is_const() && !t.consumers.empty() &&
        (t.dtype == DType::Float32 || t.dtype == DType::Float16 || t.dtype == DType::Float64))
      total += numel(t.shape);  // the selected shape where a derived subnet slices the value
  return total;
}

}  // namespace autotailor::ir
