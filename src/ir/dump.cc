#include "autotailor/ir/dump.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "autotailor/ops/ops.h"

namespace autotailor::ir {

GraphStats graph_stats(const Graph& g) {
  GraphStats s;
  s.nodes = static_cast<int64_t>(g.nodes.size());
  s.parameters = g.parameter_count();
  for (const Node& n : g.nodes) {
    int64_t m = ops::node_macs(g, n);
    s.macs += m;
    auto& e = s.by_type[n.op_type];
    e.first += 1;
    e.second += m;
  }
  return s;
}

namespace {
std::string tensor_ref(const Graph& g, int id) {
  if (id < 0) return "-";
  const Tensor& t = g.tensor(id);
  return fmt::format("{}[{}{}]", t.name, t.is_const() ? "const " : "", shape_str(t.shape));
}

}  // namespace

std::string attribute_text(const Attribute& a) {
  using K = Attribute::Kind;
  switch (a.kind) {
    case K::Int:
      return std::to_string(a.i);
    case K::Float:
      return fmt::format("{}", a.f);
    case K::String:
      return "\"" + a.s + "\"";
    case K::Ints:
      return fmt::format("[{}]", fmt::join(a.ints, ","));
    case K::Floats:
      return fmt::format("[{}]", fmt::join(a.floats, ","));
    case K::Strings:
      return fmt::format("[{} strings]", a.strings.size());
    case K::Tensor:
      return fmt::format("tensor[{}]", shape_str(a.t->shape));
    case K::Unsupported:
      break;
  }
  return "?";
}

namespace {

nlohmann::json attr_json(const Attribute& a) {
  using K = Attribute::Kind;
  switch (a.kind) {
    case K::Int:
      return a.i;
    case K::Float:
      return a.f;
    case K::String:
      return a.s;
    case K::Ints:
      return a.ints;
    case K::Floats:
      return a.floats;
    case K::Strings:
      return a.strings;
    case K::Tensor:
      return {{"tensor", a.t->shape}};
    case K::Unsupported:
      break;
  }
  return nullptr;
}
}  // namespace

std::string dump_text(const Graph& g) {
  std::string out = fmt::format("graph '{}' from {} (opset {}, {} nodes)\n", g.name, g.source,
                                g.opset(), g.nodes.size());
  for (int id : g.inputs) out += "  input  " + tensor_ref(g, id) + "\n";
  for (int id : g.outputs) out += "  output " + tensor_ref(g, id) + "\n";
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    std::vector<std::string> ins, outs, attrs;
    for (int id : n.inputs) ins.push_back(tensor_ref(g, id));
    for (int id : n.outputs) outs.push_back(tensor_ref(g, id));
    for (const auto& [k, a] : n.attrs) attrs.push_back(k + "=" + attribute_text(a));
    out += fmt::format("  {:4} {:<20} {:<28} ({}) -> ({}){}{}\n", i, n.op_type, n.name,
                       fmt::join(ins, ", "), fmt::join(outs, ", "), attrs.empty() ? "" : "  ",
                       fmt::join(attrs, " "));
  }
  return out;
}

std::string dump_json(const Graph& g, int indent) {
  using nlohmann::json;
  json tensors = json::array();
  for (const Tensor& t : g.tensors) {
    json jt = {{"name", t.name}, {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}};
    if (t.is_const()) jt["const"] = true;
    tensors.push_back(jt);
  }
  json nodes = json::array();
  for (const Node& n : g.nodes) {
    json jn = {{"name", n.name}, {"op_type", n.op_type}, {"macs", ops::node_macs(g, n)}};
    if (!n.domain.empty()) jn["domain"] = n.domain;
    json ins = json::array(), outs = json::array(), attrs = json::object();
    for (int id : n.inputs) ins.push_back(id >= 0 ? json(g.tensor(id).name) : json(nullptr));
    for (int id : n.outputs) outs.push_back(id >= 0 ? json(g.tensor(id).name) : json(nullptr));
    for (const auto& [k, a] : n.attrs) attrs[k] = attr_json(a);
    jn["inputs"] = ins;
    jn["outputs"] = outs;
    jn["attributes"] = attrs;
    nodes.push_back(jn);
  }
  json inputs = json::array(), outputs = json::array();
  for (int id : g.inputs) inputs.push_back(g.tensor(id).name);
  for (int id : g.outputs) outputs.push_back(g.tensor(id).name);
  GraphStats s = graph_stats(g);
  json by_type = json::object();
  for (const auto& [type, cm] : s.by_type)
    by_type[type] = {{"count", cm.first}, {"macs", cm.second}};
  json doc = {
      {"graph",
       {{"name", g.name},
        {"source", g.source},
        {"opset", g.opset()},
        {"ir_version", g.ir_version},
        {"producer", g.producer_name},
        {"symbolic_batch", g.symbolic_batch},
        {"inputs", inputs},
        {"outputs", outputs},
        {"tensors", tensors},
        {"nodes", nodes}}},
      {"stats",
       {{"nodes", s.nodes}, {"parameters", s.parameters}, {"macs", s.macs}, {"ops", by_type}}},
  };
  return doc.dump(indent);
}

std::string dump_dot(const Graph& g, const std::set<std::string>& highlight) {
  auto esc = [](const std::string& s) {
    std::string r;
    for (char c : s) {
      if (c == '"' || c == '\\') r += '\\';
      r += c;
    }
    return r;
  };
  std::string out = "digraph \"" + esc(g.name) +
                    "\" {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n";
  for (int id : g.inputs)
    out += fmt::format("  \"t{}\" [shape=ellipse, label=\"{}\\n{}\"];\n", id,
                       esc(g.tensor(id).name), shape_str(g.tensor(id).shape));
  for (int id : g.outputs)
    out += fmt::format("  \"t{}\" [shape=ellipse, label=\"{}\\n{}\"];\n", id,
                       esc(g.tensor(id).name), shape_str(g.tensor(id).shape));
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    std::string style = highlight.count(n.name) ? ", style=filled, fillcolor=\"#ffd27f\"" : "";
    std::string shape =
        n.outputs.empty() || n.outputs[0] < 0 ? "" : shape_str(g.tensor(n.outputs[0]).shape);
    out += fmt::format("  \"n{}\" [label=\"{}\\n{}\\n{}\"{}];\n", i, n.op_type, esc(n.name), shape,
                       style);
  }
  auto is_input = [&](int id) {
    return std::find(g.inputs.begin(), g.inputs.end(), id) != g.inputs.end();
  };
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    for (int id : g.nodes[i].inputs) {
      if (id < 0) continue;
      const Tensor& t = g.tensor(id);
      if (t.producer >= 0)
        out += fmt::format("  \"n{}\" -> \"n{}\";\n", t.producer, i);
      else if (is_input(id))
        out += fmt::format("  \"t{}\" -> \"n{}\";\n", id, i);
    }
  }
  for (int id : g.outputs)
    if (g.tensor(id).producer >= 0)
      out += fmt::format("  \"n{}\" -> \"t{}\";\n", g.tensor(id).producer, id);
  out += "}\n";
  return out;
}

}  // namespace autotailor::ir
