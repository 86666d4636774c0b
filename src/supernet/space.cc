#include <fmt/format.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "../common/json_document.h"
#include "../ops/op_registry.h"
#include "analysis.h"
#include "autotailor/common/error.h"
#include "autotailor/import/shape_inference.h"
#include "autotailor/supernet/space.h"

namespace autotailor::supernet {

namespace {

void walk(const ir::Graph& g, ChannelState& st) {
  // The model's input channels never change.
  for (int id : g.inputs) {
    const ir::Tensor& t = g.tensor(id);
    if (t.shape.size() < 2) continue;
    st.layouts[id] = st.fresh(t.shape[1], 1, "input " + t.name);
    st.freeze(st.layouts[id], "model input '" + t.name + "'");
  }
  for (const ir::Node& n : g.nodes) {
    ChannelContext ctx{st, n};
    const ops::OpDef* def = n.domain.empty() ? ops::find_op(n.op_type) : nullptr;
    if (def && def->channels)
      def->channels(ctx);
    else
      freeze_everything(ctx);
  }
  // Nor does the class count (or any other output).
  for (int id : g.outputs) st.freeze(st.layouts[id], "model output '" + g.tensor(id).name + "'");
}

}  // namespace

std::unique_ptr<ChannelAnalysis> analyze_channels(const ir::Graph& g) {
  // A pass that needs a boundary inside a space (a Split or Slice through it, a grouped conv's
  // groups) freezes it and requests the cut; the next pass starts with that producer's
  // channels cut into separate spaces. Cuts only accumulate, so this ends; the pass limit
  // bounds pathological graphs, whose last pass keeps its freezes.
  std::map<std::string, std::set<int64_t>> cuts;
  constexpr int kMaxPasses = 16;
  for (int pass = 1;; ++pass) {
    auto a = std::make_unique<ChannelAnalysis>(g);
    a->state.cuts = cuts;
    walk(g, a->state);
    bool grew = false;
    for (const auto& [origin, at] : a->state.requested)
      for (int64_t c : at) grew |= cuts[origin].insert(c).second;
    if (!grew || pass == kMaxPasses) return a;
  }
}

namespace {

std::vector<int64_t> width_choices(int64_t size, int64_t chunks, const SpaceOptions& o) {
  std::set<int64_t> c;
  // With several chunks side by side, the tensor's channels (chunks x width) are what the
  // multiple is for: each chunk rounds to multiple / gcd(multiple, chunks).
  const int64_t m = std::max<int64_t>(1, o.width_multiple / std::gcd(o.width_multiple, chunks));
  for (double r : o.width_ratios) {
    if (r >= 1.0) continue;  // the full width is added exactly below, never rounded
    double w = r * static_cast<double>(size);
    // Groups wider than the multiple round to it and keep at least one multiple (a 10-channel
    // group offers 8 and 10, not 1); narrower ones round up, never below 1 channel.
    int64_t v = size > m ? std::max<int64_t>(m, std::llround(w / static_cast<double>(m)) * m)
                         : static_cast<int64_t>(std::ceil(w));
    c.insert(std::clamp<int64_t>(v, 1, size));
  }
  c.insert(size);
  return {c.begin(), c.end()};
}

}  // namespace

std::vector<WidthGroup> width_groups(ChannelAnalysis& a, const SpaceOptions& o) {
  ChannelState& st = a.state;
  const ir::Graph& g = st.graph;
  std::map<int, int> index_of_root;  // root space -> group index
  std::vector<WidthGroup> groups;
  a.group_of_space.assign(st.spaces.size(), -1);
  for (size_t s = 0; s < st.spaces.size(); ++s) {
    int r = st.root(static_cast<int>(s));
    auto [it, added] = index_of_root.emplace(r, static_cast<int>(groups.size()));
    if (added) {
      WidthGroup w;
      // Named after the node producing its first space; a node producing several spaces (a
      // Split cut inside one) or duplicate node names get a numbered suffix.
      w.name = st.spaces[s].origin;
      for (int k = 2; std::any_of(groups.begin(), groups.end(),
                                  [&](const WidthGroup& o) { return o.name == w.name; });
           ++k)
        w.name = st.spaces[s].origin + "#" + std::to_string(k);
      w.size = st.spaces[s].size;
      groups.push_back(w);
    }
    a.group_of_space[s] = it->second;
    groups[it->second].producers.push_back(st.spaces[s].origin);
  }
  for (const Binding& b : st.bindings) {
    std::map<int, int64_t> seen;  // group -> its spaces in this binding
    for (const Segment& seg : b.layout.segments) {
      int gi = a.group_of_space[seg.space];
      groups[gi].chunks = std::max(groups[gi].chunks, ++seen[gi]);
      if (seen[gi] > 1) continue;
      auto& m = groups[gi].members;
      if (std::find(m.begin(), m.end(), b.node) == m.end()) m.push_back(b.node);
    }
  }
  a.group_names.clear();
  for (const WidthGroup& w : groups) a.group_names.push_back(w.name);
  for (auto& [root, gi] : index_of_root) {
    WidthGroup& w = groups[gi];
    bool user_frozen = std::find(o.freeze.begin(), o.freeze.end(), w.name) != o.freeze.end();
    if (st.spaces[root].frozen)
      w.frozen_by = st.spaces[root].frozen_by;
    else if (!o.elastic_width)
      w.frozen_by = "elastic width switched off";
    else if (user_frozen)
      w.frozen_by = "frozen by the user";
    else if (w.members.empty())
      w.frozen_by = "no weights follow these channels";
    w.choices =
        w.frozen_by.empty() ? width_choices(w.size, w.chunks, o) : std::vector<int64_t>{w.size};
    if (!w.elastic() && w.frozen_by.empty()) w.frozen_by = "too narrow to shrink";
  }
  (void)g;
  return groups;
}

namespace {

// A residual block: Add(s, body(s)) where the body is reached from s alone, nothing outside
// reads the body, and s feeds only the body and the Add. Removing it leaves s in its place.
std::vector<SkippableBlock> find_blocks(const ir::Graph& g) {
  std::vector<char> is_output(g.tensors.size(), 0);
  for (int id : g.outputs) is_output[id] = 1;
  std::vector<SkippableBlock> blocks;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& add = g.nodes[i];
    if (add.op_type != "Add" || add.inputs.size() != 2 || add.outputs.size() != 1) continue;
    const ir::Shape& ys = g.tensor(add.outputs[0]).shape;
    for (int side = 0; side < 2; ++side) {
      int s = add.inputs[side], o = add.inputs[1 - side];
      if (s == o || g.tensor(s).is_const() || g.tensor(o).is_const()) continue;
      if (g.tensor(s).shape != ys || g.tensor(o).shape != ys || g.tensor(o).producer < 0) continue;
      std::set<int> body;
      std::vector<int> stack{g.tensor(o).producer};
      bool ok = true;
      while (ok && !stack.empty()) {
        int n = stack.back();
        stack.pop_back();
        if (!body.insert(n).second) continue;
        for (int in : g.nodes[n].inputs) {
          if (in < 0 || in == s || g.tensor(in).is_const()) continue;
          int p = g.tensor(in).producer;
          if (p < 0)
            ok = false;  // reaches a graph input other than the shortcut
          else
            stack.push_back(p);
        }
      }
      for (int n : body) {
        if (!ok) break;
        for (int out : g.nodes[n].outputs) {
          if (out >= 0 && is_output[out]) ok = false;
          for (int c : out >= 0 ? g.tensor(out).consumers : std::vector<int>{})
            if (c != static_cast<int>(i) && !body.count(c)) ok = false;
        }
      }
      for (int c : g.tensor(s).consumers)
        if (c != static_cast<int>(i) && !body.count(c)) ok = false;
      if (!ok || is_output[add.outputs[0]]) continue;
      SkippableBlock b;
      b.name = add.name;
      b.input = g.tensor(s).name;
      for (int n : body) b.nodes.push_back(g.nodes[n].name);  // std::set: topological order
      b.nodes.push_back(add.name);
      blocks.push_back(b);
      break;
    }
  }
  return blocks;
}

// Consecutive blocks form a stage: the next block's input is this block's output, directly or
// through single-consumer single-input ops (the ReLU after a ResNet block's Add).
std::vector<Stage> find_stages(const ir::Graph& g, const std::vector<SkippableBlock>& blocks) {
  std::vector<Stage> stages;
  auto follows = [&](const SkippableBlock& prev, const SkippableBlock& next) {
    int add = -1;
    for (size_t i = 0; i < g.nodes.size(); ++i)
      if (g.nodes[i].name == prev.name) add = static_cast<int>(i);
    int t = g.nodes[add].outputs[0];
    for (int hops = 0; hops < 4; ++hops) {
      if (g.tensor(t).name == next.input) return true;
      const auto& cons = g.tensor(t).consumers;
      if (cons.size() != 1) return false;
      const ir::Node& n = g.nodes[cons[0]];
      int computed = 0;
      for (int in : n.inputs) computed += in >= 0 && !g.tensor(in).is_const();
      if (computed != 1 || n.outputs.size() != 1) return false;
      t = n.outputs[0];
    }
    return false;
  };
  for (size_t b = 0; b < blocks.size(); ++b) {
    if (!stages.empty() && follows(blocks[stages.back().blocks.back()], blocks[b]))
      stages.back().blocks.push_back(static_cast<int>(b));
    else
      stages.push_back({blocks[b].name, {static_cast<int>(b)}, {}});
  }
  for (Stage& st : stages)
    for (int64_t k = 0; k <= static_cast<int64_t>(st.blocks.size()); ++k) st.choices.push_back(k);
  return stages;
}

std::vector<KernelChoice> find_kernels(const ir::Graph& g) {
  std::vector<KernelChoice> out;
  for (const ir::Node& n : g.nodes) {
    if (n.op_type != "Conv" || !n.has_input(1) || !g.tensor(n.inputs[1]).is_const()) continue;
    const ir::Shape& w = g.tensor(n.inputs[1]).shape;
    if (w.size() != 4 || w[2] != w[3] || w[2] < 5 || w[2] % 2 == 0) continue;
    bool dilated = false;
    for (int64_t d : n.attr_ints("dilations")) dilated |= d != 1;
    if (dilated) continue;
    std::string auto_pad = n.attr_str("auto_pad", "NOTSET");
    int64_t k = w[2];
    std::vector<int64_t> pads = n.attr_ints("pads", {0, 0, 0, 0});
    int64_t min_pad = *std::min_element(pads.begin(), pads.end());
    KernelChoice kc{n.name, k, {}};
    for (int64_t c = 3; c <= k; c += 2)
      if (c == k || auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER" ||
          (auto_pad == "NOTSET" && min_pad >= (k - c) / 2))
        kc.choices.push_back(c);
    if (kc.choices.size() > 1) out.push_back(kc);
  }
  return out;
}

// Resolution is elastic when nothing but global pooling stands between the last spatial
// tensor and the classifier, and shape inference accepts every candidate size.
void find_resolutions(const ir::Graph& g, const SpaceOptions& o, SearchSpace& s) {
  if (g.inputs.size() != 1) {
    s.resolution_fixed_by = "the model has several inputs";
    return;
  }
  const ir::Tensor& in = g.tensor(g.inputs[0]);
  if (in.shape.size() != 4 || in.shape[2] != in.shape[3]) {
    s.resolution_fixed_by = "the input is not a square image";
    return;
  }
  // A square image input: its size is recorded even when it cannot change.
  s.resolution = in.shape[2];
  s.resolutions = {in.shape[2]};
  const std::set<std::string> flattening = {"Flatten", "Reshape", "Gemm", "MatMul", "Transpose"};
  for (const ir::Node& n : g.nodes) {
    if (!flattening.count(n.op_type) || !n.has_input(0)) continue;
    const ir::Shape& x = g.tensor(n.inputs[0]).shape;
    int64_t spatial = 1;
    for (size_t d = 2; d < x.size(); ++d) spatial *= x[d];
    if (x.size() >= 3 && spatial > 1) {
      s.resolution_fixed_by = fmt::format(
          "{} '{}' depends on the spatial size (it reads {} spatial positions; elastic "
          "resolution needs global pooling before the classifier and no size-bound reshapes)",
          n.op_type, n.name, spatial);
      return;
    }
  }
  int64_t full = in.shape[2];
  s.resolutions.clear();
  std::set<int64_t> sizes{full};
  if (o.elastic_resolution && o.resolutions > 1) {
    for (int i = 0; i < o.resolutions - 1; ++i) {
      double r = o.min_resolution_ratio + (1.0 - o.min_resolution_ratio) * i / (o.resolutions - 1);
      int64_t v = std::llround(r * full / o.resolution_multiple) * o.resolution_multiple;
      if (v >= o.resolution_multiple && v < full) sizes.insert(v);
    }
  }
  for (int64_t v : sizes) {
    if (v != full) {
      ir::Graph probe = g;
      probe.tensor(probe.inputs[0]).shape = {in.shape[0], in.shape[1], v, v};
      std::string err;
      if (!infer_graph_shapes(probe, &err)) continue;
      bool ok = true;
      for (const ir::Tensor& t : probe.tensors)
        for (int64_t d : t.shape) ok &= d > 0;
      for (size_t k = 0; k < g.outputs.size(); ++k)
        ok &= probe.tensor(probe.outputs[k]).shape == g.tensor(g.outputs[k]).shape;
      if (!ok) continue;
    }
    s.resolutions.push_back(v);
  }
  if (!o.elastic_resolution)
    s.resolution_fixed_by = "elastic resolution switched off";
  else if (o.resolutions <= 1)
    s.resolution_fixed_by = "one resolution requested (--resolutions 1)";
  else if (s.resolutions.size() == 1)
    s.resolution_fixed_by = "no smaller input size passes shape inference";
}

}  // namespace

ir::Graph unshare_constants(const ir::Graph& src) {
  ir::Graph g = src;
  bool changed = false;
  const size_t n = g.tensors.size();
  for (size_t t = 0; t < n; ++t) {
    if (!g.tensors[t].is_const() || g.tensors[t].shape.empty()) continue;
    std::vector<int> users = g.tensors[t].consumers;
    users.erase(std::unique(users.begin(), users.end()), users.end());
    for (size_t u = 1; u < users.size(); ++u) {
      int copy = g.unique_tensor(g.tensors[t].name + "_" + std::to_string(u));
      ir::Tensor& c = g.tensor(copy);
      c.value = g.tensors[t].value;  // the same bytes: no copy of the data
      c.dtype = g.tensors[t].dtype;
      c.shape = g.tensors[t].shape;
      for (int& in : g.nodes[users[u]].inputs)
        if (in == static_cast<int>(t)) in = copy;
      changed = true;
    }
  }
  if (changed) g.relink();
  return g;
}

SearchSpace analyze(const ir::Graph& graph, const SpaceOptions& o) {
  SearchSpace s;
  const ir::Graph g = unshare_constants(graph);
  auto a = analyze_channels(g);
  std::vector<WidthGroup> groups = width_groups(*a, o);
  std::stable_partition(groups.begin(), groups.end(),
                        [](const WidthGroup& w) { return w.elastic(); });
  s.groups = std::move(groups);
  if (o.elastic_depth) {
    s.blocks = find_blocks(g);
    s.stages = find_stages(g, s.blocks);
    for (Stage& st : s.stages)
      if (std::find(o.freeze.begin(), o.freeze.end(), st.name) != o.freeze.end())
        st.choices = {static_cast<int64_t>(st.blocks.size())};
  }
  if (o.elastic_kernel) {
    s.kernels = find_kernels(g);
    for (KernelChoice& k : s.kernels)
      if (std::find(o.freeze.begin(), o.freeze.end(), k.node) != o.freeze.end())
        k.choices = {k.size};
  }
  find_resolutions(g, o, s);
  // A --freeze name nothing matched is a typo, not a no-op.
  for (const std::string& name : o.freeze) {
    bool found = s.group(name) != nullptr;
    for (const Stage& st : s.stages) found = found || st.name == name;
    for (const KernelChoice& k : s.kernels) found = found || k.node == name;
    if (!found && o.elastic_depth && o.elastic_kernel)
      usage_fail(
          "--freeze {}: no width group, stage or convolution of that name (see inspect --space)",
          name);
  }
  return s;
}

double SearchSpace::log10_size() const {
  double l = 0;
  for (const WidthGroup& w : groups) l += std::log10(static_cast<double>(w.choices.size()));
  for (const Stage& st : stages) l += std::log10(static_cast<double>(st.choices.size()));
  for (const KernelChoice& k : kernels) l += std::log10(static_cast<double>(k.choices.size()));
  if (!resolutions.empty()) l += std::log10(static_cast<double>(resolutions.size()));
  return l;
}

int SearchSpace::elastic_groups() const {
  return static_cast<int>(
      std::count_if(groups.begin(), groups.end(), [](const WidthGroup& w) { return w.elastic(); }));
}

int SearchSpace::elastic_kernels() const {
  return static_cast<int>(std::count_if(
      kernels.begin(), kernels.end(), [](const KernelChoice& k) { return k.choices.size() > 1; }));
}

const WidthGroup* SearchSpace::group(const std::string& name) const {
  for (const WidthGroup& w : groups)
    if (w.name == name) return &w;
  return nullptr;
}

const Stage* SearchSpace::stage(const std::string& name) const {
  for (const Stage& st : stages)
    if (st.name == name) return &st;
  return nullptr;
}

const KernelChoice* SearchSpace::kernel(const std::string& node) const {
  for (const KernelChoice& k : kernels)
    if (k.node == node) return &k;
  return nullptr;
}

std::string space_to_json(const SearchSpace& s, int indent) {
  using nlohmann::json;
  json groups = json::array(), frozen = json::array(), blocks = json::array(),
       stages = json::array(), kernels = json::array();
  for (const WidthGroup& w : s.groups) {
    if (w.elastic()) {
      groups.push_back({{"name", w.name},
                        {"channels", w.size},
                        {"choices", w.choices},
                        {"producers", w.producers},
                        {"members", w.members}});
      if (w.chunks > 1) groups.back()["chunks"] = w.chunks;
    } else
      frozen.push_back({{"name", w.name}, {"channels", w.size}, {"frozen_by", w.frozen_by}});
  }
  for (const SkippableBlock& b : s.blocks)
    blocks.push_back({{"name", b.name}, {"input", b.input}, {"nodes", b.nodes}});
  for (const Stage& st : s.stages) {
    json names = json::array();
    for (int b : st.blocks) names.push_back(s.blocks[b].name);
    stages.push_back({{"name", st.name}, {"blocks", names}, {"choices", st.choices}});
  }
  for (const KernelChoice& k : s.kernels)
    kernels.push_back({{"node", k.node}, {"size", k.size}, {"choices", k.choices}});
  json res = {{"size", s.resolution}, {"choices", s.resolutions}};
  if (!s.resolution_fixed_by.empty()) res["fixed_by"] = s.resolution_fixed_by;
  json doc = {{"format", "autotailor-space"}, {"version", 1},
              {"width_groups", groups},       {"frozen_groups", frozen},
              {"skippable_blocks", blocks},   {"stages", stages},
              {"kernels", kernels},           {"resolution", res},
              {"log10_size", s.log10_size()}};
  return doc.dump(indent);
}

namespace {
// Choices from the file must be a non-empty subset of what the analysis allows.
std::vector<int64_t> narrowed(const nlohmann::json& j, const std::vector<int64_t>& allowed,
                              const std::string& where) {
  std::vector<int64_t> v;
  try {
    v = j.at("choices").get<std::vector<int64_t>>();
  } catch (const std::exception&) {
    fail("{}: 'choices' must be a list of integers", where);
  }
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  if (v.empty()) fail("{}: 'choices' is empty", where);
  for (int64_t x : v)
    if (std::find(allowed.begin(), allowed.end(), x) == allowed.end())
      fail("{}: choice {} is not one of [{}]", where, x, fmt::join(allowed, ", "));
  return v;
}
}  // namespace

namespace {

void apply_space_document(SearchSpace& s, const nlohmann::json& j, const std::string& source) {
  std::set<std::string> listed;
  for (const auto& e : j.value("width_groups", nlohmann::json::array())) {
    std::string name = e.value("name", "");
    auto it = std::find_if(s.groups.begin(), s.groups.end(),
                           [&](const WidthGroup& w) { return w.name == name; });
    if (it == s.groups.end() || !it->elastic())
      fail("{}: width group '{}' is not an elastic group of this model", source, name);
    it->choices = narrowed(e, it->choices, fmt::format("{}: width group '{}'", source, name));
    if (it->choices.back() != it->size)
      fail("{}: width group '{}' must keep its full width {} among its choices", source, name,
           it->size);
    if (it->choices.size() == 1) it->frozen_by = "narrowed to one choice in " + source;
    listed.insert(name);
  }
  for (WidthGroup& w : s.groups)
    if (w.elastic() && !listed.count(w.name)) {
      w.choices = {w.size};
      w.frozen_by = "not listed in " + source;
    }
  std::stable_partition(s.groups.begin(), s.groups.end(),
                        [](const WidthGroup& w) { return w.elastic(); });
  for (const auto& e : j.value("stages", nlohmann::json::array())) {
    std::string name = e.value("name", "");
    auto it = std::find_if(s.stages.begin(), s.stages.end(),
                           [&](const Stage& st) { return st.name == name; });
    if (it == s.stages.end()) fail("{}: stage '{}' is not a stage of this model", source, name);
    it->choices = narrowed(e, it->choices, fmt::format("{}: stage '{}'", source, name));
    if (it->choices.back() != static_cast<int64_t>(it->blocks.size()))
      fail("{}: stage '{}' must keep all {} blocks among its choices", source, name,
           it->blocks.size());
  }
  for (const auto& e : j.value("kernels", nlohmann::json::array())) {
    std::string name = e.value("node", "");
    auto it = std::find_if(s.kernels.begin(), s.kernels.end(),
                           [&](const KernelChoice& k) { return k.node == name; });
    if (it == s.kernels.end())
      fail("{}: kernel of '{}' is not elastic in this model", source, name);
    it->choices = narrowed(e, it->choices, fmt::format("{}: kernel '{}'", source, name));
    if (it->choices.back() != it->size)
      fail("{}: kernel of '{}' must keep its full size {} among its choices", source, name,
           it->size);
  }
  if (j.contains("resolution") && !s.resolutions.empty()) {
    s.resolutions = narrowed(j["resolution"], s.resolutions, source + ": resolution");
    if (s.resolutions.back() != s.resolution)
      fail("{}: resolution must keep the model's own size {} among its choices", source,
           s.resolution);
    if (s.resolutions.size() == 1) s.resolution_fixed_by = "narrowed to one size in " + source;
  }
}

}  // namespace

void apply_space_json(SearchSpace& s, const std::string& text, const std::string& source) {
  nlohmann::json j = parse_document(text, source, "autotailor-space", "an autotailor space.json");
  try {
    apply_space_document(s, j, source);
  } catch (const nlohmann::json::exception& e) {  // a field of the wrong type (found by fuzzing)
    std::string msg = e.what();
    fail("{}: {}", source, msg.substr(0, msg.find('\n')));
  }
}

}  // namespace autotailor::supernet
