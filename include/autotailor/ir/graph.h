// TailorIR: the graph every stage reads and writes. Typed nodes in topological order, tensors
// with static shapes, producers and consumers, constant data shared (never copied), ONNX names
// kept so that every node and tensor can be traced back to the source file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace autotailor::ir {

// Same codes as onnx.TensorProto.DataType, so conversion is a cast.
enum class DType : int32_t {
  Undefined = 0,
  Float32 = 1,
  UInt8 = 2,
  Int8 = 3,
  UInt16 = 4,
  Int16 = 5,
  Int32 = 6,
  Int64 = 7,
  String = 8,
  Bool = 9,
  Float16 = 10,
  Float64 = 11,
  UInt32 = 12,
  UInt64 = 13,
  BFloat16 = 16,
};
std::string_view dtype_name(DType t);
size_t dtype_size(DType t);  // 0 for String and Undefined

using Shape = std::vector<int64_t>;
int64_t numel(const Shape& s);
class Graph;
// Every float16 and float64 tensor, constant, tensor attribute and Cast target made float32
// (autotailor trains, searches and exports in float32). Returns how many tensors changed.
int convert_to_float32(Graph& g);
// The element count, or nullopt when a dimension is negative or the product (times
// `element_size`, in bytes) passes INT64_MAX: for shapes read from files, before allocating.
std::optional<int64_t> checked_numel(const Shape& s, int64_t element_size = 1);
std::string shape_str(const Shape& s);  // "1x3x224x224", "scalar" for rank 0

// Immutable tensor contents: initializers and folded constants. Shared between graphs and
// the executor (which wraps the bytes without copying).
struct ConstData {
  DType dtype = DType::Undefined;
  Shape shape;
  std::shared_ptr<const std::vector<std::byte>> bytes;

  int64_t numel() const { return ir::numel(shape); }
  template <class T>
  const T* data() const {
    return reinterpret_cast<const T*>(bytes->data());
  }
  // Values converted element-wise; for small integer/float tensors (shapes, axes, scalars).
  std::vector<int64_t> to_int64() const;
  std::vector<double> to_double() const;

  static std::shared_ptr<const ConstData> make(DType t, Shape s, std::vector<std::byte> b);
  static std::shared_ptr<const ConstData> from_int64(const std::vector<int64_t>& v, Shape s);
  // A copy holding only the selected indices of each axis (see Tensor::select).
  std::shared_ptr<const ConstData> gather(const std::vector<std::vector<int64_t>>& select) const;
  static std::shared_ptr<const ConstData> from_float(const std::vector<float>& v, Shape s);
};

struct Attribute {
  enum class Kind { Int, Float, String, Ints, Floats, Strings, Tensor, Unsupported };
  Kind kind = Kind::Unsupported;
  int64_t i = 0;
  float f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<float> floats;
  std::vector<std::string> strings;
  std::shared_ptr<const ConstData> t;
};

struct Tensor {
  std::string name;
  DType dtype = DType::Undefined;
  Shape shape;                             // static; a symbolic batch dimension is stored as 1
  bool shape_known = true;                 // false only while importing, before inference has run
  std::shared_ptr<const ConstData> value;  // set for weights and constants
  // A subnet's view of a shared constant: per axis of `value`, the indices kept (an empty list
  // keeps the axis whole). `shape` is then the selected shape; `value` keeps the full data.
  std::vector<std::vector<int64_t>> select;
  int producer = -1;           // node index, -1 for graph inputs and constants
  std::vector<int> consumers;  // node indices, in order, with repeats

  bool is_const() const { return value != nullptr; }
};

struct Node {
  std::string name;  // ONNX node name, or "<op_type>_<index>" when the file has none
  std::string op_type;
  std::string domain;       // "" for the default ONNX domain
  std::vector<int> inputs;  // tensor ids; -1 for an omitted optional input
  std::vector<int> outputs;
  std::map<std::string, Attribute> attrs;

  bool has_input(size_t k) const { return k < inputs.size() && inputs[k] >= 0; }
  bool has_output(size_t k) const { return k < outputs.size() && outputs[k] >= 0; }
  const Attribute* attr(const std::string& key) const;
  int64_t attr_int(const std::string& key, int64_t def) const;
  float attr_float(const std::string& key, float def) const;
  std::string attr_str(const std::string& key, const std::string& def) const;
  std::vector<int64_t> attr_ints(const std::string& key, std::vector<int64_t> def = {}) const;
  std::vector<float> attr_floats(const std::string& key, std::vector<float> def = {}) const;
};

class Graph {
 public:
  std::string name;
  std::string source;  // path of the file it came from, for messages
  int64_t ir_version = 8;
  std::map<std::string, int64_t> opsets;  // domain -> version ("" is ai.onnx)
  std::string producer_name, producer_version;
  bool symbolic_batch = false;  // the file's inputs had a symbolic first dimension

  std::vector<Tensor> tensors;
  std::vector<Node> nodes;  // topological order
  std::vector<int> inputs;  // graph inputs that are not constants
  std::vector<int> outputs;

  int64_t opset() const;  // the default domain's version
  int add_tensor(Tensor t);
  int find(const std::string& tensor_name) const;  // -1 when absent
  int unique_tensor(const std::string& stem);      // a new empty tensor with an unused name
  const Tensor& tensor(int id) const { return tensors.at(id); }
  Tensor& tensor(int id) { return tensors.at(id); }

  // "Conv 'resnet/conv1' (node 3)": how messages name a node.
  std::string describe(const Node& n) const;

  // Recomputes producers and consumers, sorts nodes topologically (stable with respect to
  // the current order) and drops nodes whose outputs nothing uses.
  void relink();
  // Removes tensors no node, input or output refers to; renumbers ids.
  void compact();

  int64_t parameter_count() const;  // elements of constants consumed by nodes

 private:
  std::unordered_map<std::string, int> index_;
};

}  // namespace autotailor::ir
