#include "proto_convert.h"

#include <cstring>

#include "autotailor/common/error.h"

namespace autotailor::proto {

namespace {
template <class Src, class Dst>
std::vector<std::byte> pack(const google::protobuf::RepeatedField<Src>& f) {
  std::vector<std::byte> b(f.size() * sizeof(Dst));
  for (int i = 0; i < f.size(); ++i) {
    Dst v = static_cast<Dst>(f.Get(i));
    std::memcpy(b.data() + i * sizeof(Dst), &v, sizeof(Dst));
  }
  return b;
}
}  // namespace

std::shared_ptr<const ir::ConstData> to_const(const onnx::TensorProto& t,
                                              const std::string& where) {
  auto type = static_cast<ir::DType>(t.data_type());
  size_t esize = ir::dtype_size(type);
  if (esize == 0) unsupported("{}: tensor type {} is not supported", where, ir::dtype_name(type));
  ir::Shape shape(t.dims().begin(), t.dims().end());
  for (int64_t d : shape)
    if (d < 0) fail("{}: negative dimension {}", where, d);
  std::optional<int64_t> counted = ir::checked_numel(shape, static_cast<int64_t>(esize));
  if (!counted)
    fail("{}: shape {} has more elements than fit in 64 bits", where, ir::shape_str(shape));
  int64_t n = *counted;
  std::vector<std::byte> bytes;
  if (t.has_raw_data()) {
    const std::string& raw = t.raw_data();
    bytes.resize(raw.size());
    if (!raw.empty()) std::memcpy(bytes.data(), raw.data(), raw.size());
  } else {
    switch (type) {
      case ir::DType::Float32:
        bytes = pack<float, float>(t.float_data());
        break;
      case ir::DType::Float64:
        bytes = pack<double, double>(t.double_data());
        break;
      case ir::DType::Int64:
        bytes = pack<int64_t, int64_t>(t.int64_data());
        break;
      case ir::DType::UInt32:
        bytes = pack<uint64_t, uint32_t>(t.uint64_data());
        break;
      case ir::DType::UInt64:
        bytes = pack<uint64_t, uint64_t>(t.uint64_data());
        break;
      case ir::DType::Int32:
        bytes = pack<int32_t, int32_t>(t.int32_data());
        break;
      case ir::DType::Int16:
        bytes = pack<int32_t, int16_t>(t.int32_data());
        break;
      case ir::DType::UInt16:
      case ir::DType::Float16:
      case ir::DType::BFloat16:
        bytes = pack<int32_t, uint16_t>(t.int32_data());
        break;
      case ir::DType::Int8:
        bytes = pack<int32_t, int8_t>(t.int32_data());
        break;
      case ir::DType::UInt8:
      case ir::DType::Bool:
        bytes = pack<int32_t, uint8_t>(t.int32_data());
        break;
      default:
        unsupported("{}: tensor type {} is not supported", where, ir::dtype_name(type));
    }
  }
  if (bytes.size() != static_cast<size_t>(n) * esize)
    fail("{}: holds {} bytes, but its shape {} of {} needs {}", where, bytes.size(),
         ir::shape_str(shape), ir::dtype_name(type), static_cast<size_t>(n) * esize);
  return ir::ConstData::make(type, std::move(shape), std::move(bytes));
}

void from_const(const ir::ConstData& c, const std::string& name, onnx::TensorProto* out) {
  out->Clear();
  out->set_name(name);
  out->set_data_type(static_cast<int32_t>(c.dtype));
  for (int64_t d : c.shape) out->add_dims(d);
  out->set_raw_data(reinterpret_cast<const char*>(c.bytes->data()), c.bytes->size());
}

ir::Attribute to_attribute(const onnx::AttributeProto& a, const std::string& where) {
  using K = ir::Attribute::Kind;
  ir::Attribute r;
  switch (a.type()) {
    case onnx::AttributeProto::INT:
      r.kind = K::Int;
      r.i = a.i();
      break;
    case onnx::AttributeProto::FLOAT:
      r.kind = K::Float;
      r.f = a.f();
      break;
    case onnx::AttributeProto::STRING:
      r.kind = K::String;
      r.s = a.s();
      break;
    case onnx::AttributeProto::INTS:
      r.kind = K::Ints;
      r.ints.assign(a.ints().begin(), a.ints().end());
      break;
    case onnx::AttributeProto::FLOATS:
      r.kind = K::Floats;
      r.floats.assign(a.floats().begin(), a.floats().end());
      break;
    case onnx::AttributeProto::STRINGS:
      r.kind = K::Strings;
      r.strings.assign(a.strings().begin(), a.strings().end());
      break;
    case onnx::AttributeProto::TENSOR:
      r.kind = K::Tensor;
      r.t = to_const(a.t(), where + " attribute '" + a.name() + "'");
      break;
    default:
      r.kind = K::Unsupported;
      break;
  }
  return r;
}

bool from_attribute(const std::string& name, const ir::Attribute& a, onnx::AttributeProto* out) {
  using K = ir::Attribute::Kind;
  out->Clear();
  out->set_name(name);
  switch (a.kind) {
    case K::Int:
      out->set_type(onnx::AttributeProto::INT);
      out->set_i(a.i);
      break;
    case K::Float:
      out->set_type(onnx::AttributeProto::FLOAT);
      out->set_f(a.f);
      break;
    case K::String:
      out->set_type(onnx::AttributeProto::STRING);
      out->set_s(a.s);
      break;
    case K::Ints:
      out->set_type(onnx::AttributeProto::INTS);
      for (int64_t v : a.ints) out->add_ints(v);
      break;
    case K::Floats:
      out->set_type(onnx::AttributeProto::FLOATS);
      for (float v : a.floats) out->add_floats(v);
      break;
    case K::Strings:
      out->set_type(onnx::AttributeProto::STRINGS);
      for (const auto& v : a.strings) out->add_strings(v);
      break;
    case K::Tensor:
      out->set_type(onnx::AttributeProto::TENSOR);
      from_const(*a.t, "", out->mutable_t());
      break;
    case K::Unsupported:
      return false;
  }
  return true;
}

}  // namespace autotailor::proto
