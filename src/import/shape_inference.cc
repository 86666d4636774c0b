#include "autotailor/import/shape_inference.h"

#include <onnx/defs/schema.h>
#include <onnx/shape_inference/implementation.h>

#include <unordered_map>

#include "libonnx_guards.h"
#include "proto_convert.h"

namespace autotailor {

namespace {
void describe(const ir::Tensor& t, onnx::ValueInfoProto* v) {
  v->set_name(t.name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(static_cast<int32_t>(t.dtype));
  auto* shape = tt->mutable_shape();
  for (int64_t d : t.shape) shape->add_dim()->set_dim_value(d);
}

bool carries_data(const ir::Tensor& t) {
  return t.select.empty() && (t.dtype == ir::DType::Int64 || t.dtype == ir::DType::Int32) &&
         t.value->numel() <= 4096;
}
}  // namespace

bool infer_graph_shapes(ir::Graph& g, std::string* error) {
  onnx::ModelProto m;
  m.set_ir_version(g.ir_version);
  for (const auto& [domain, version] : g.opsets) {
    auto* op = m.add_opset_import();
    op->set_domain(domain);
    op->set_version(version);
  }
  onnx::GraphProto* gp = m.mutable_graph();
  for (int id : g.inputs) describe(g.tensor(id), gp->add_input());
  for (const ir::Tensor& t : g.tensors) {
    if (!t.is_const() || t.consumers.empty()) continue;
    if (carries_data(t))
      proto::from_const(*t.value, t.name, gp->add_initializer());
    else
      describe(t, gp->add_input());
  }
  for (const ir::Node& n : g.nodes) {
    onnx::NodeProto* np = gp->add_node();
    np->set_name(n.name);
    np->set_op_type(n.op_type);
    np->set_domain(n.domain);
    for (int in : n.inputs) np->add_input(in >= 0 ? g.tensor(in).name : "");
    for (int out : n.outputs) np->add_output(out >= 0 ? g.tensor(out).name : "");
    for (const auto& [key, a] : n.attrs) proto::from_attribute(key, a, np->add_attribute());
  }
  for (int id : g.outputs) {
    auto* v = gp->add_output();
    v->set_name(g.tensor(id).name);
    v->mutable_type()->mutable_tensor_type()->set_elem_type(
        static_cast<int32_t>(g.tensor(id).dtype));
  }
  try {
    onnx::ShapeInferenceOptions opt(true, 1, true);
    onnx::shape_inference::InferShapes(m, import_detail::guarded_schemas(), opt);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (error) *error = msg.substr(0, msg.find('\n'));
    return false;
  }
  std::unordered_map<std::string, const onnx::TypeProto*> types;
  for (const auto& v : m.graph().value_info()) types[v.name()] = &v.type();
  for (const auto& v : m.graph().output()) types[v.name()] = &v.type();
  for (ir::Tensor& t : g.tensors) {
    if (t.is_const() || t.producer < 0) continue;
    auto it = types.find(t.name);
    bool known = it != types.end() && it->second->tensor_type().has_shape();
    ir::Shape shape;
    if (known)
      for (const auto& d : it->second->tensor_type().shape().dim()) {
        known &= d.has_dim_value();
        shape.push_back(d.dim_value());
      }
    if (!known) {
      if (error) *error = "the shape of '" + t.name + "' cannot be inferred";
      return false;
    }
    t.shape = shape;
  }
  return true;
}

}  // namespace autotailor
