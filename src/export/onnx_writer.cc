#include "autotailor/export/onnx_writer.h"

#include "../import/proto_convert.h"
#include "autotailor/common/error.h"
#include "autotailor/common/files.h"
#include "model_proto.h"

namespace autotailor {

namespace {
void set_value_info(const ir::Graph& g, int id, bool batch_param, onnx::ValueInfoProto* v) {
  const ir::Tensor& t = g.tensor(id);
  v->set_name(t.name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(static_cast<int32_t>(t.dtype));
  auto* shape = tt->mutable_shape();
  for (size_t d = 0; d < t.shape.size(); ++d) {
    auto* dim = shape->add_dim();
    if (d == 0 && batch_param)
      dim->set_dim_param("N");
    else if (t.shape[d] >= 0)  // an unknown dimension stays unset
      dim->set_dim_value(t.shape[d]);
  }
}
}  // namespace

void to_model_proto(const ir::Graph& g, onnx::ModelProto* m, bool symbolic_batch) {
  m->Clear();
  m->set_ir_version(g.ir_version);
  m->set_producer_name("autotailor");
  m->set_producer_version(AUTOTAILOR_VERSION);
  for (const auto& [domain, version] : g.opsets) {
    auto* op = m->add_opset_import();
    op->set_domain(domain);
    op->set_version(version);
  }
  onnx::GraphProto* gp = m->mutable_graph();
  gp->set_name(g.name.empty() ? "autotailor" : g.name);
  for (int id : g.inputs)
    set_value_info(g, id, symbolic_batch && g.symbolic_batch, gp->add_input());
  for (int id : g.outputs)
    set_value_info(g, id, symbolic_batch && g.symbolic_batch, gp->add_output());
  std::vector<char> is_output(g.tensors.size(), 0);
  for (int id : g.outputs) is_output[id] = 1;
  for (size_t i = 0; i < g.tensors.size(); ++i) {
    const ir::Tensor& t = g.tensors[i];
    if (!t.is_const() || (t.consumers.empty() && !is_output[i])) continue;
    // A subnet's selection from shared data is written out as its own tensor.
    bool selected = false;
    for (const auto& axis : t.select) selected |= !axis.empty();
    proto::from_const(selected ? *t.value->gather(t.select) : *t.value, t.name,
                      gp->add_initializer());
  }
  for (const ir::Node& n : g.nodes) {
    onnx::NodeProto* np = gp->add_node();
    np->set_name(n.name);
    np->set_op_type(n.op_type);
    if (!n.domain.empty()) np->set_domain(n.domain);
    for (int in : n.inputs) np->add_input(in >= 0 ? g.tensor(in).name : "");
    for (int out : n.outputs) np->add_output(out >= 0 ? g.tensor(out).name : "");
    for (const auto& [key, a] : n.attrs)
      if (!proto::from_attribute(key, a, np->add_attribute()))
        fail("{}: attribute '{}' cannot be written back to ONNX", g.describe(n), key);
  }
}

std::string serialize_onnx(const ir::Graph& g) {
  onnx::ModelProto m;
  to_model_proto(g, &m);
  std::string out;
  if (!m.SerializeToString(&out)) fail("cannot serialize '{}' to ONNX (over 2 GB?)", g.name);
  return out;
}

void save_onnx(const ir::Graph& g, const std::string& path) {
  write_file_atomic(path, serialize_onnx(g));
}

}  // namespace autotailor
