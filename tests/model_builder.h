// Builds small ONNX models in code, for tests of hard topologies and bad input.
#pragma once

#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace autotailor::test {

class ModelBuilder {
 public:
  explicit ModelBuilder(int64_t opset = 13, std::string name = "test") {
    m_.set_ir_version(8);
    m_.set_producer_name("autotailor-tests");
    auto* op = m_.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    m_.mutable_graph()->set_name(std::move(name));
  }

  ModelBuilder& input(const std::string& name, const std::vector<int64_t>& shape,
                      int32_t type = onnx::TensorProto::FLOAT) {
    value_info(m_.mutable_graph()->add_input(), name, shape, type);
    return *this;
  }
  // An output declared without a shape gets the one ONNX shape inference gives it when the
  // model is serialized, as an exporter would write it.
  ModelBuilder& output(const std::string& name, const std::vector<int64_t>& shape = {},
                       int32_t type = onnx::TensorProto::FLOAT) {
    value_info(m_.mutable_graph()->add_output(), name, shape, type, shape.empty());
    return *this;
  }
  // A float initializer with seeded normal values (scale 0.5), or the given values.
  ModelBuilder& weight(const std::string& name, const std::vector<int64_t>& shape,
                       std::vector<float> values = {}) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    if (values.empty()) {
      std::normal_distribution<float> dist(0.0f, 0.5f);
      for (int64_t i = 0; i < n; ++i) values.push_back(dist(rng_));
    }
    auto* t = m_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : shape) t->add_dims(d);
    t->set_raw_data(values.data(), values.size() * sizeof(float));
    return *this;
  }
  ModelBuilder& ints(const std::string& name, const std::vector<int64_t>& values) {
    auto* t = m_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(values.size()));
    t->set_raw_data(values.data(), values.size() * sizeof(int64_t));
    return *this;
  }
  // node("Conv", {"x", "w"}, {"y"}, {{"pads", {1,1,1,1}}}) — int-list attributes; use
  // attr() on the returned proto for others.
  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& in,
                        const std::vector<std::string>& out,
                        const std::vector<std::pair<std::string, std::vector<int64_t>>>& attrs = {},
                        const std::string& name = "") {
    auto* n = m_.mutable_graph()->add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? out.at(0) + "_node" : name);
    for (const auto& s : in) n->add_input(s);
    for (const auto& s : out) n->add_output(s);
    for (const auto& [k, v] : attrs) {
      auto* a = n->add_attribute();
      a->set_name(k);
      static const std::set<std::string> scalar = {"group",  "axis",   "keepdims", "to",
                                                   "transA", "transB", "size"};
      if (v.size() == 1 && scalar.count(k)) {
        a->set_type(onnx::AttributeProto::INT);
        a->set_i(v[0]);
      } else {
        a->set_type(onnx::AttributeProto::INTS);
        for (int64_t x : v) a->add_ints(x);
      }
    }
    return *n;
  }
  static void attr_float(onnx::NodeProto& n, const std::string& k, float v) {
    auto* a = n.add_attribute();
    a->set_name(k);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }

  static void attr_int(onnx::NodeProto& n, const std::string& k, int64_t v) {
    auto* a = n.add_attribute();
    a->set_name(k);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void attr_string(onnx::NodeProto& n, const std::string& k, const std::string& v) {
    auto* a = n.add_attribute();
    a->set_name(k);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
  }

  onnx::ModelProto& proto() { return m_; }
  // The model exactly as built, without bytes()'s output shapes: for models that libonnx's
  // own inference must not see (tests of what the importer refuses before it runs).
  // Outputs declared without a shape get an empty (rank-0) one, which the checker accepts.
  std::string raw_bytes() const {
    onnx::ModelProto m = m_;
    for (auto& out : *m.mutable_graph()->mutable_output())
      out.mutable_type()->mutable_tensor_type()->mutable_shape();
    return m.SerializeAsString();
  }
  std::string bytes() const {
    onnx::ModelProto m = m_;
    onnx::ModelProto probe = m_;
    probe.mutable_graph()->clear_output();
    try {
      onnx::shape_inference::InferShapes(probe);
    } catch (const std::exception&) {
      return m.SerializeAsString();  // a deliberately broken model: leave it as it is
    }
    for (auto& out : *m.mutable_graph()->mutable_output()) {
      if (out.type().tensor_type().has_shape()) continue;
      for (const auto& vi : probe.graph().value_info())
        if (vi.name() == out.name()) *out.mutable_type() = vi.type();
    }
    return m.SerializeAsString();
  }
  void save(const std::string& path) const { std::ofstream(path, std::ios::binary) << bytes(); }

 private:
  static void value_info(onnx::ValueInfoProto* v, const std::string& name,
                         const std::vector<int64_t>& shape, int32_t type, bool no_shape = false) {
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(type);
    if (no_shape) return;
    auto* s = tt->mutable_shape();
    for (int64_t d : shape) {
      auto* dim = s->add_dim();
      if (d < 0)
        dim->set_dim_param(d == -1 ? "N" : "H");
      else
        dim->set_dim_value(d);
    }
  }

  onnx::ModelProto m_;
  std::mt19937 rng_{42};
};

}  // namespace autotailor::test
