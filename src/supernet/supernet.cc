#include "autotailor/supernet/supernet.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "analysis.h"
#include "autotailor/common/error.h"
#include "autotailor/common/files.h"
#include "autotailor/export/onnx_writer.h"
#include "autotailor/import/onnx_import.h"
#include "autotailor/import/shape_inference.h"

namespace autotailor::supernet {

namespace {

nlohmann::json options_json(const SpaceOptions& o) {
  return {{"width_ratios", o.width_ratios},
          {"width_multiple", o.width_multiple},
          {"resolutions", o.resolutions},
          {"min_resolution_ratio", o.min_resolution_ratio},
          {"resolution_multiple", o.resolution_multiple},
          {"elastic_width", o.elastic_width},
          {"elastic_depth", o.elastic_depth},
          {"elastic_kernel", o.elastic_kernel},
          {"elastic_resolution", o.elastic_resolution},
          {"freeze", o.freeze}};
}

SpaceOptions options_from_json(const nlohmann::json& j) {
  SpaceOptions o;
  o.width_ratios = j.value("width_ratios", o.width_ratios);
  o.width_multiple = j.value("width_multiple", o.width_multiple);
  o.resolutions = j.value("resolutions", o.resolutions);
  o.min_resolution_ratio = j.value("min_resolution_ratio", o.min_resolution_ratio);
  o.resolution_multiple = j.value("resolution_multiple", o.resolution_multiple);
  o.elastic_width = j.value("elastic_width", o.elastic_width);
  o.elastic_depth = j.value("elastic_depth", o.elastic_depth);
  o.elastic_kernel = j.value("elastic_kernel", o.elastic_kernel);
  o.elastic_resolution = j.value("elastic_resolution", o.elastic_resolution);
  o.freeze = j.value("freeze", o.freeze);
  return o;
}

// Positions along a binding's axis, in order, of each kept channel (expanded by `inner`).
template <class KeepOf>
std::vector<int64_t> positions(const Layout& l, KeepOf keep_of) {
  std::vector<int64_t> idx;
  int64_t off = 0;
  for (const Segment& seg : l.segments) {
    for (int64_t c : keep_of(seg))
      for (int64_t e = 0; e < l.inner; ++e) idx.push_back((off + c) * l.inner + e);
    off += seg.length;
  }
  return idx;
}

int node_index(const ir::Graph& g, const std::string& name) {
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (g.nodes[i].name == name) return static_cast<int>(i);
  return -1;
}

}  // namespace

Supernet::Supernet(std::shared_ptr<const ir::Graph> g, const SpaceOptions& options)
    : graph_(std::make_shared<const ir::Graph>(unshare_constants(*g))), options_(options) {
  space_ = analyze(*graph_, options_);
  analysis_ = analyze_channels(*graph_);
  width_groups(*analysis_, options_);
}

Supernet Supernet::load(const std::string& dir) {
  namespace fs = std::filesystem;
  std::string model = (fs::path(dir) / "supernet.onnx").string();
  std::string space = (fs::path(dir) / "space.json").string();
  if (!fs::is_directory(dir)) fail("'{}' is not a directory made by `autotailor supernet`", dir);
  if (!fs::exists(model))
    fail("'{}' is missing: run `autotailor supernet MODEL -o {}`", model, dir);
  std::string text = read_file(space);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception&) {
    fail("{}: not valid JSON", space);
  }
  Supernet s(import_onnx(model), options_from_json(j.value("options", nlohmann::json::object())));
  apply_space_json(s.space_, text, space);
  return s;
}

void Supernet::save(const std::string& dir) const {
  ensure_writable_dir(dir);
  save_onnx(*graph_, (std::filesystem::path(dir) / "supernet.onnx").string());
  nlohmann::json j = nlohmann::json::parse(space_to_json(space_));
  j["options"] = options_json(options_);
  j["model"] = graph_->source;
  write_file_atomic((std::filesystem::path(dir) / "space.json").string(), j.dump(2) + "\n");
}

Supernet Supernet::reordered_by_importance() const {
  const ir::Graph& g = *graph_;
  const ChannelState& st = analysis_->state;
  const auto& group_of = analysis_->group_of_space;
  // Per analysis group: elastic? and accumulated importance.
  std::map<int, std::vector<double>> imp;
  std::map<int, bool> elastic;
  for (size_t s = 0; s < st.spaces.size(); ++s) {
    int gi = group_of[s];
    const WidthGroup* w = space_.group(analysis_->group_names[gi]);
    if (w && !elastic.count(gi)) elastic[gi] = w->elastic();
  }
  auto accumulate = [&](Binding::Role role) {
    for (const Binding& b : st.bindings) {
      if (b.role != role) continue;
      const ir::Tensor& t = g.tensor(b.tensor);
      if (t.dtype != ir::DType::Float32) continue;
      const ir::ConstData& c = *t.value;
      const float* p = c.data<float>();
      int64_t outer = 1, inner = 1, n = c.shape[b.axis];
      for (int a = 0; a < b.axis; ++a) outer *= c.shape[a];
      for (size_t a = b.axis + 1; a < c.shape.size(); ++a) inner *= c.shape[a];
      std::vector<double> per(n, 0.0);
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < n; ++i)
          for (int64_t k = 0; k < inner; ++k) per[i] += std::fabs(p[(o * n + i) * inner + k]);
      int64_t off = 0;
      for (const Segment& seg : b.layout.segments) {
        int gi = group_of[seg.space];
        if (elastic[gi]) {
          auto& v = imp[gi];
          v.resize(seg.length, 0.0);
          for (int64_t ch = 0; ch < seg.length; ++ch)
            for (int64_t e = 0; e < b.layout.inner; ++e)
              v[ch] += per[(off + ch) * b.layout.inner + e];
        }
        off += seg.length;
      }
    }
  };
  accumulate(Binding::Role::Consumer);
  for (auto& [gi, el] : elastic)
    if (el && !imp.count(gi)) {
      // No weights consume the group: rank by the weights that produce it.
      std::map<int, std::vector<double>> saved;
      saved.swap(imp);
      accumulate(Binding::Role::Producer);
      auto produced = imp[gi];
      imp.swap(saved);
      imp[gi] = produced;
    }
  std::map<int, std::vector<int64_t>> order;  // rank -> original channel
  for (auto& [gi, importance] : imp) {
    const auto& v = importance;  // lambdas capture structured bindings only from C++20
    std::vector<int64_t> perm(v.size());
    std::iota(perm.begin(), perm.end(), 0);
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return v[a] > v[b]; });
    order[gi] = perm;
  }
  // Every constant indexed by a reordered group gathers its channels in the new order.
  std::map<int, std::vector<std::vector<int64_t>>> selects;
  for (const Binding& b : st.bindings) {
    auto& sel = selects[b.tensor];
    sel.resize(g.tensor(b.tensor).shape.size());
    if (!sel[b.axis].empty()) continue;
    sel[b.axis] = positions(b.layout, [&](const Segment& seg) {
      auto it = order.find(group_of[seg.space]);
      std::vector<int64_t> keep(seg.length);
      if (it != order.end() && static_cast<int64_t>(it->second.size()) == seg.length)
        keep = it->second;
      else
        std::iota(keep.begin(), keep.end(), 0);
      return keep;
    });
  }
  auto out = std::make_shared<ir::Graph>(g);
  for (auto& [tid, sel] : selects) {
    ir::Tensor& t = out->tensor(tid);
    t.value = t.value->gather(sel);
  }
  Supernet r(out, options_);
  r.space_ = space_;
  return r;
}

std::shared_ptr<ir::Graph> Supernet::derive(const SubnetConfig& c) const {
  const ir::Graph& src = *graph_;
  auto g = std::make_shared<ir::Graph>(src);
  const ChannelState& st = analysis_->state;

  // Widths: each channel space keeps the first `width` channels of its group.
  std::map<std::string, int64_t> width;  // group name -> kept
  for (const WidthGroup& w : space_.groups) {
    auto it = c.widths.find(w.name);
    int64_t k = it == c.widths.end() ? w.size : it->second;
    if (std::find(w.choices.begin(), w.choices.end(), k) == w.choices.end())
      fail("subnet: width {} of group '{}' is not one of its choices", k, w.name);
    width[w.name] = k;
  }
  for (const auto& [name, k] : c.widths)
    if (!space_.group(name)) fail("subnet: unknown width group '{}'", name);
  std::vector<int64_t> kept_of_space(st.spaces.size());
  {
    for (size_t s = 0; s < st.spaces.size(); ++s) {
      auto it = width.find(analysis_->group_names[analysis_->group_of_space[s]]);
      kept_of_space[s] = it == width.end() ? st.spaces[s].size : it->second;
    }
  }
  for (const Binding& b : st.bindings) {
    ir::Tensor& t = g->tensor(b.tensor);
    if (t.select.empty()) t.select.resize(t.value->shape.size());
    auto idx = positions(b.layout, [&](const Segment& seg) {
      std::vector<int64_t> keep(kept_of_space[seg.space]);
      std::iota(keep.begin(), keep.end(), 0);
      return keep;
    });
    if (static_cast<int64_t>(idx.size()) == t.value->shape[b.axis]) continue;
    t.select[b.axis] = idx;
    t.shape[b.axis] = static_cast<int64_t>(idx.size());
  }

  // Positions a layout keeps along its axis (kept channels x inner).
  auto kept = [&](const Layout& l) {
    int64_t k = 0;
    for (const Segment& seg : l.segments) k += kept_of_space[seg.space];
    return k * l.inner;
  };

  // A Split along the channels gives each output the kept widths of the spaces it carries.
  for (ir::Node& n : g->nodes) {
    if (n.op_type != "Split" || n.inputs.empty()) continue;
    const Layout& in = st.layouts[n.inputs[0]];
    int64_t rank = static_cast<int64_t>(g->tensor(n.inputs[0]).shape.size());
    int64_t axis = n.attr_int("axis", 0);
    if (axis < 0) axis += rank;
    if (!in.valid() || axis != in.axis) continue;
    std::vector<int64_t> sizes;
    bool changed = false;
    bool usable = true;
    for (int o : n.outputs) {
      if (o < 0 || static_cast<int64_t>(src.tensor(o).shape.size()) <= axis) {
        usable = false;
        break;
      }
      const Layout& l = st.layouts[o];
      // An output the rule froze has a fresh layout (possibly on another axis): it keeps its size.
      if (!l.valid() || l.axis != in.axis) {
        sizes.push_back(src.tensor(o).shape[axis]);
        continue;
      }
      sizes.push_back(kept(l));
      changed |= sizes.back() != src.tensor(o).shape[axis];
    }
    if (!usable || !changed) continue;
    if (g->opset() >= 13) {
      int id = g->unique_tensor(n.name + "_split");
      ir::Tensor& t = g->tensor(id);
      t.value = ir::ConstData::from_int64(sizes, {static_cast<int64_t>(sizes.size())});
      t.dtype = ir::DType::Int64;
      t.shape = t.value->shape;
      if (n.inputs.size() < 2) n.inputs.resize(2, -1);
      n.inputs[1] = id;
    } else {
      ir::Attribute a;
      a.kind = ir::Attribute::Kind::Ints;
      a.ints = sizes;
      n.attrs["split"] = a;
    }
  }

  // A depthwise conv has one group per input channel: its group count follows the sliced width
  // (C_out / multiplier). Other grouped convs keep their group count.
  for (ir::Node& n : g->nodes) {
    if (n.op_type != "Conv" || !n.has_input(1)) continue;
    const ir::Tensor& w = g->tensor(n.inputs[1]);
    int64_t groups = n.attr_int("group", 1);
    if (groups > 1 && w.is_const() && w.value->shape[1] == 1 && w.value->shape[0] % groups == 0)
      n.attrs["group"].i = w.shape[0] / (w.value->shape[0] / groups);
  }

  // A Slice along the channels moves its bounds to the kept channels before and inside it.
  for (ir::Node& n : g->nodes) {
    if (n.op_type != "Slice" || n.inputs.empty() || n.outputs.empty()) continue;
    const Layout& in = st.layouts[n.inputs[0]];
    const Layout& out = st.layouts[n.outputs[0]];
    if (!in.valid() || !out.valid() || out.segments.empty()) continue;
    std::optional<SliceRange> r = slice_range(src, n, in.axis);
    if (!r || r->step != 1) continue;
    // The slice covers whole segments of its input (the channel rule made sure; otherwise its
    // output is a fresh frozen space and nothing moves): count the kept channels before it.
    if (r->begin % in.inner != 0) continue;
    int64_t before = 0, pos = 0;
    size_t i = 0;
    for (; i < in.segments.size() && pos < r->begin / in.inner; ++i) {
      before += kept_of_space[in.segments[i].space];
      pos += in.segments[i].length;
    }
    bool covers = pos == r->begin / in.inner && out.axis == in.axis && out.inner == in.inner &&
                  i + out.segments.size() <= in.segments.size() &&
                  std::equal(out.segments.begin(), out.segments.end(),
                             in.segments.begin() + static_cast<std::ptrdiff_t>(i));
    if (!covers) continue;
    int64_t b = before * in.inner, e = b + kept(out);
    if (b == r->begin && e == r->end) continue;
    set_slice_range(*g, n, in.axis, b, e);
  }

  // A Reshape whose output carries channels gets the kept count on that axis.
  for (ir::Node& n : g->nodes) {
    if (n.op_type != "Reshape" || n.inputs.size() < 2 || n.outputs.empty()) continue;
    const Layout& out = st.layouts[n.outputs[0]];
    const ir::Tensor& shape = g->tensor(n.inputs[1]);
    if (!out.valid() || !shape.is_const()) continue;
    std::vector<int64_t> dims = shape.value->to_int64();
    size_t a = static_cast<size_t>(out.axis);
    if (a >= dims.size() || dims[a] <= 0 || dims[a] == kept(out)) continue;
    dims[a] = kept(out);
    int id = g->unique_tensor(n.name + "_shape");
    ir::Tensor& t = g->tensor(id);
    t.value = ir::ConstData::from_int64(dims, {static_cast<int64_t>(dims.size())});
    t.dtype = ir::DType::Int64;
    t.shape = t.value->shape;
    n.inputs[1] = id;
  }

  // Kernels: centre crop of the weight, pads shrunk to keep the output size.
  for (const auto& [node, k] : c.kernels) {
    const KernelChoice* kc = space_.kernel(node);
    if (!kc) fail("subnet: '{}' has no kernel choices", node);
    if (std::find(kc->choices.begin(), kc->choices.end(), k) == kc->choices.end())
      fail("subnet: kernel {} of '{}' is not one of its choices", k, node);
    if (k == kc->size) continue;
    ir::Node& n = g->nodes[node_index(*g, node)];
    ir::Tensor& w = g->tensor(n.inputs[1]);
    if (w.select.empty()) w.select.resize(w.value->shape.size());
    int64_t d = (kc->size - k) / 2;
    for (int a = 2; a < 4; ++a) {
      w.select[a].resize(k);
      std::iota(w.select[a].begin(), w.select[a].end(), d);
      w.shape[a] = k;
    }
    if (n.attrs.count("kernel_shape")) n.attrs["kernel_shape"].ints = {k, k};
    if (n.attrs.count("pads") && n.attr_str("auto_pad", "NOTSET") == "NOTSET")
      for (int64_t& p : n.attrs["pads"].ints) p -= d;
  }

  // Depth: blocks past a stage's kept count are cut out; their input takes their output's place.
  std::set<int> removed;
  std::map<int, int> replace;  // tensor id -> tensor id
  for (const auto& [name, d] : c.depths) {
    const Stage* stage = space_.stage(name);
    if (!stage) fail("subnet: unknown stage '{}'", name);
    if (std::find(stage->choices.begin(), stage->choices.end(), d) == stage->choices.end())
      fail("subnet: depth {} of stage '{}' is not one of its choices", d, name);
    for (size_t b = static_cast<size_t>(d); b < stage->blocks.size(); ++b) {
      const SkippableBlock& blk = space_.blocks[stage->blocks[b]];
      for (const std::string& nn : blk.nodes) removed.insert(node_index(*g, nn));
      int add = node_index(*g, blk.name);
      replace[g->nodes[add].outputs[0]] = g->find(blk.input);
    }
  }
  if (!removed.empty()) {
    auto resolve = [&](int t) {
      while (replace.count(t)) t = replace[t];
      return t;
    };
    std::vector<ir::Node> kept;
    for (size_t i = 0; i < g->nodes.size(); ++i)
      if (!removed.count(static_cast<int>(i))) kept.push_back(std::move(g->nodes[i]));
    for (ir::Node& n : kept)
      for (int& t : n.inputs)
        if (t >= 0) t = resolve(t);
    for (int& t : g->outputs) t = resolve(t);
    g->nodes = std::move(kept);
  }

  // Resolution.
  if (c.resolution != 0 && c.resolution != space_.resolution) {
    if (std::find(space_.resolutions.begin(), space_.resolutions.end(), c.resolution) ==
        space_.resolutions.end())
      fail("subnet: resolution {} is not one of its choices", c.resolution);
    ir::Tensor& in = g->tensor(g->inputs[0]);
    in.shape[2] = in.shape[3] = c.resolution;
  }
  g->relink();
  g->compact();
  std::string err;
  if (!infer_graph_shapes(*g, &err)) fail("subnet: shapes cannot be inferred: {}", err);
  return g;
}

std::map<std::string, std::vector<std::string>> Supernet::node_width_groups() const {
  const ir::Graph& g = *graph_;
  ChannelState& st = analysis_->state;
  std::map<std::string, std::vector<std::string>> out;
  for (const ir::Node& n : g.nodes) {
    std::set<std::string> names;
    auto add = [&](int t) {
      if (t < 0) return;
      for (const Segment& seg : st.layouts[t].segments) {
        const std::string& name = analysis_->group_names[analysis_->group_of_space[seg.space]];
        const WidthGroup* w = space_.group(name);
        if (w && w->elastic()) names.insert(name);
      }
    };
    for (int t : n.inputs) add(t);
    for (int t : n.outputs) add(t);
    out[n.name] = {names.begin(), names.end()};
  }
  return out;
}

void materialize(ir::Graph& g) {
  for (ir::Tensor& t : g.tensors) {
    if (!t.is_const() || t.select.empty()) continue;
    bool any = false;
    for (const auto& s : t.select) any |= !s.empty();
    if (any) t.value = t.value->gather(t.select);
    t.select.clear();
  }
}

}  // namespace autotailor::supernet
