#include "autotailor/latency/latency.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "../common/json_document.h"
#include "autotailor/common/error.h"
#include "autotailor/common/files.h"
#include "autotailor/common/statistics.h"
#include "autotailor/exec/executor.h"
#include "autotailor/exec/timing.h"
#include "autotailor/ir/dump.h"
#include "autotailor/latency/device.h"
#include "autotailor/ops/ops.h"

namespace autotailor::latency {

namespace {

// Ops whose repetition inside a fused chain costs nothing (relu(relu(x)) = relu(x)): a block
// skipped in a ResNet leaves its trailing ReLU after the previous block's, and that must not
// make a new configuration.
bool idempotent(const std::string& op) {
  return op == "Relu" || op == "Clip";
}

std::string step_key(const ir::Graph& g, const exec::Executor::StepInfo& s) {
  std::vector<std::string> ops;
  for (int ni : s.nodes) {
    const std::string& t = g.nodes[ni].op_type;
    if (!ops.empty() && ops.back() == t && idempotent(t)) continue;
    ops.push_back(t);
  }
  std::vector<std::string> ins, attrs;
  for (int t : s.in) {
    if (t < 0) {
      ins.emplace_back("-");
      continue;
    }
    std::string in = g.tensor(t).is_const() ? "c" : "";  // appends: GCC 12 warns falsely on +
    in += ir::shape_str(g.tensor(t).shape);
    ins.push_back(std::move(in));
  }
  for (const auto& [k, a] : g.nodes[s.nodes[0]].attrs)
    if (a.kind != ir::Attribute::Kind::Tensor) attrs.push_back(k + "=" + ir::attribute_text(a));
  return fmt::format("{}|{}|{}", fmt::join(ops, "+"), fmt::join(ins, ","), fmt::join(attrs, ";"));
}

// Steps as a graph of their own: their computed inputs become graph inputs; the outputs are the
// last step's and any other that is not read inside or is also read outside.
std::shared_ptr<ir::Graph> extract(const ir::Graph& g,
                                   const std::vector<const exec::Executor::StepInfo*>& steps) {
  auto sg = std::make_shared<ir::Graph>();
  sg->name = "step";
  sg->source = g.source + (steps.size() == 1 ? " (one step)" : " (steps)");
  sg->ir_version = g.ir_version;
  sg->opsets = g.opsets;
  std::map<int, int> id;
  std::set<int> produced, read;
  for (const auto* s : steps)
    for (int ni : s->nodes) {
      for (int o : g.nodes[ni].outputs) produced.insert(o);
      for (int i : g.nodes[ni].inputs) read.insert(i);
    }
  auto map_tensor = [&](int t) {
    if (t < 0) return -1;
    auto it = id.find(t);
    if (it != id.end()) return it->second;
    ir::Tensor nt = g.tensor(t);
    nt.producer = -1;
    nt.consumers.clear();
    int nid = sg->add_tensor(nt);
    id[t] = nid;
    if (!nt.is_const() && !produced.count(t)) sg->inputs.push_back(nid);
    return nid;
  };
  for (const auto* s : steps)
    for (int ni : s->nodes) {
      ir::Node n = g.nodes[ni];
      for (int& t : n.inputs) t = map_tensor(t);
      for (int& t : n.outputs) t = map_tensor(t);
      sg->nodes.push_back(std::move(n));
    }
  // An earlier step's output stays an output when something outside reads it (a runtime must
  // then materialize it, as in the whole network, rather than fuse it away).
  std::set<int> inside;
  for (const auto* s : steps) inside.insert(s->nodes.begin(), s->nodes.end());
  auto read_outside = [&](int t) {
    const ir::Tensor& x = g.tensor(t);
    if (std::find(g.outputs.begin(), g.outputs.end(), t) != g.outputs.end()) return true;
    return std::any_of(x.consumers.begin(), x.consumers.end(),
                       [&](int c) { return !inside.count(c); });
  };
  for (size_t k = 0; k < steps.size(); ++k)
    for (int t : steps[k]->out)
      if (k + 1 == steps.size() || !read.count(t) || read_outside(t))
        sg->outputs.push_back(map_tensor(t));
  sg->relink();
  return sg;
}

struct Steps {
  std::vector<exec::Executor::StepInfo> plan;
  std::vector<std::string> keys;
};

Steps plan_of(std::shared_ptr<const ir::Graph> g) {
  exec::Executor ex(g);
  Steps s;
  s.plan = ex.plan();
  for (const auto& st : s.plan) s.keys.push_back(step_key(*g, st));
  return s;
}

int64_t tensor_bytes(const ir::Tensor& t) {
  int64_t n = ir::dtype_size(t.dtype);
  for (int64_t d : t.shape) n *= d;
  return n;
}

// Calls fn(producer step, consumer step, consumer input slot, tensor) for every computed tensor
// one step writes and another reads, in plan order.
void for_each_edge(const ir::Graph& g, const Steps& st,
                   const std::function<void(size_t, size_t, size_t, int)>& fn) {
  std::map<int, size_t> producer;
  for (size_t j = 0; j < st.plan.size(); ++j)
    for (int t : st.plan[j].out) producer[t] = j;
  for (size_t k = 0; k < st.plan.size(); ++k)
    for (size_t slot = 0; slot < st.plan[k].in.size(); ++slot) {
      int t = st.plan[k].in[slot];
      if (t < 0 || g.tensor(t).is_const()) continue;
      auto p = producer.find(t);
      if (p != producer.end() && p->second != k) fn(p->second, k, slot, t);
    }
}

// Each step of this subnet: its LUT entry less the savings of the detected fusion rules at the
// boundaries into it (`raw`), the bytes of its computed and constant inputs, and its
// contribution to the prediction with the LUT's calibration applied (`ms`). Throws Error
// naming a configuration the LUT lacks.
struct StepTimes {
  std::vector<double> raw, saving, input_mb, weight_mb, ms;
};

StepTimes step_times(const ir::Graph& g, const Steps& st, const LatencyTable& lut) {
  StepTimes out;
  for (size_t k = 0; k < st.keys.size(); ++k) {
    auto it = lut.entries.find(st.keys[k]);
    if (it == lut.entries.end())
      fail("the {} LUT has no entry for '{}': run `autotailor profile` again", lut.device,
           st.keys[k]);
    out.raw.push_back(it->second.median_ms);
    double in = 0, w = 0;
    for (int t : st.plan[k].in)
      if (t >= 0) (g.tensor(t).is_const() ? w : in) += tensor_bytes(g.tensor(t)) / 1e6;
    out.input_mb.push_back(in);
    out.weight_mb.push_back(w);
  }
  out.saving.assign(st.keys.size(), 0.0);
  if (!lut.rules.empty()) {
    std::vector<std::string> kind;
    for (const std::string& key : st.keys) kind.push_back(step_kind(key));
    const std::vector<double> entry = out.raw;
    for_each_edge(g, st, [&](size_t a, size_t b, size_t, int t) {
      double v =
          lut.boundary_saving(kind[a], kind[b], tensor_bytes(g.tensor(t)), entry[a] + entry[b]);
      out.raw[b] -= v;
      out.saving[b] += v;
    });
  }
  for (size_t k = 0; k < st.keys.size(); ++k)
    out.ms.push_back(lut.scale * out.raw[k] + lut.ms_per_input_mb * out.input_mb[k] +
                     lut.ms_per_weight_mb * out.weight_mb[k]);
  return out;
}

}  // namespace

std::string step_kind(const std::string& key) {
  size_t bar = key.find('|');
  std::string head = key.substr(0, std::min(key.find('+'), bar));
  if (head != "Conv" || bar == std::string::npos) return head;
  size_t g = key.find("group=", key.rfind('|'));
  int64_t group = g == std::string::npos ? 1 : std::atoll(key.c_str() + g + 6);
  if (group <= 1) return head;
  // The first input's shape, "1x64x56x56": channels are its second dimension.
  size_t x = key.find('x', bar);
  int64_t channels = x == std::string::npos ? 0 : std::atoll(key.c_str() + x + 1);
  return group == channels ? "DepthwiseConv" : "GroupConv";
}

std::vector<std::string> step_keys(const ir::Graph& g) {
  return plan_of(std::make_shared<ir::Graph>(g)).keys;
}

namespace {

// The dimensions a step's configuration can depend on.
struct Dim {
  enum { Width, Kernel, Resolution } kind;
  std::string name;
  std::vector<int64_t> choices;
};

// Each step of the max subnet (by its head node), the dimensions it depends on, and the
// combinations of their choices not yet seen.
struct StepDims {
  std::string head;
  std::vector<int> dims;
  std::vector<std::vector<int>> todo;  // choice indices per dim
};

struct Coverage {
  std::vector<Dim> dims;
  std::vector<StepDims> steps;
};

Coverage coverage(const supernet::Supernet& s) {
  const supernet::SearchSpace& sp = s.space();
  Coverage cv;
  std::vector<Dim>& dims = cv.dims;
  std::map<std::string, int> dim_of;
  for (const auto& w : sp.groups)
    if (w.elastic()) {
      dim_of["w:" + w.name] = static_cast<int>(dims.size());
      dims.push_back({Dim::Width, w.name, w.choices});
    }
  for (const auto& k : sp.kernels)
    if (k.choices.size() > 1) {
      dim_of["k:" + k.node] = static_cast<int>(dims.size());
      dims.push_back({Dim::Kernel, k.node, k.choices});
    }
  int res_dim = -1;
  if (sp.resolutions.size() > 1) {
    res_dim = static_cast<int>(dims.size());
    dims.push_back({Dim::Resolution, "resolution", sp.resolutions});
  }

  auto groups_of = s.node_width_groups();
  std::shared_ptr<const ir::Graph> max_graph = s.derive(supernet::max_subnet(sp));
  Steps max_steps = plan_of(max_graph);
  for (const auto& st : max_steps.plan) {
    std::set<int> ds;
    for (int ni : st.nodes) {
      const std::string& name = max_graph->nodes[ni].name;
      for (const std::string& gname : groups_of[name]) ds.insert(dim_of["w:" + gname]);
      auto k = dim_of.find("k:" + name);
      if (k != dim_of.end()) ds.insert(k->second);
    }
    if (res_dim >= 0) ds.insert(res_dim);
    StepDims sd{max_graph->nodes[st.nodes[0]].name, {ds.begin(), ds.end()}, {}};
    std::vector<int> idx(sd.dims.size(), 0);
    const size_t cap = 20000;
    for (;;) {
      sd.todo.push_back(idx);
      size_t d = 0;
      for (; d < idx.size(); ++d) {
        if (++idx[d] < static_cast<int>(dims[sd.dims[d]].choices.size())) break;
        idx[d] = 0;
      }
      if (d == idx.size() || sd.todo.size() >= cap) break;
    }
    if (sd.todo.size() >= cap)
      spdlog::warn("a step depends on more than {} combinations; only that many are covered", cap);
    cv.steps.push_back(std::move(sd));
  }
  return cv;
}

// Derives covering subnets: every combination of every step's dimensions appears in one, at
// full and at minimum depth. Returns how many were derived.
int visit_covering(const supernet::Supernet& s, const Coverage& cv,
                   const std::function<void(const supernet::SubnetConfig&,
                                            std::shared_ptr<const ir::Graph>, const Steps&)>& fn) {
  const supernet::SearchSpace& sp = s.space();
  const std::vector<Dim>& dims = cv.dims;
  int derived = 0;
  for (bool min_depth : {false, true}) {
    if (min_depth && sp.stages.empty()) break;
    std::vector<StepDims> work = cv.steps;
    for (;;) {
      std::vector<int> assign(dims.size(), -1);
      bool any = false;
      for (StepDims& sd : work) {
        for (size_t c = 0; c < sd.todo.size(); ++c) {
          bool fits = true;
          for (size_t d = 0; fits && d < sd.dims.size(); ++d)
            fits = assign[sd.dims[d]] < 0 || assign[sd.dims[d]] == sd.todo[c][d];
          if (!fits) continue;
          for (size_t d = 0; d < sd.dims.size(); ++d) assign[sd.dims[d]] = sd.todo[c][d];
          sd.todo.erase(sd.todo.begin() + static_cast<std::ptrdiff_t>(c));
          any = true;
          break;
        }
      }
      if (!any) break;
      // Dimensions no step asked for take seeded random choices, so that the covering
      // subnets (the contexts steps are timed in) look like the subnets a search visits
      // rather than like the max subnet.
      supernet::SubnetConfig cfg = supernet::random_subnet(sp, 0x636f766572ull + derived);
      cfg.depths = supernet::max_subnet(sp).depths;
      for (size_t d = 0; d < dims.size(); ++d) {
        if (assign[d] < 0) continue;
        int64_t v = dims[d].choices[assign[d]];
        if (dims[d].kind == Dim::Width) cfg.widths[dims[d].name] = v;
        if (dims[d].kind == Dim::Kernel) cfg.kernels[dims[d].name] = v;
        if (dims[d].kind == Dim::Resolution) cfg.resolution = v;
      }
      if (min_depth) cfg.depths = supernet::min_subnet(sp).depths;
      std::shared_ptr<const ir::Graph> g = s.derive(cfg);
      ++derived;
      fn(cfg, g, plan_of(g));
    }
  }
  return derived;
}

int64_t dim_value(const Dim& d, const supernet::SubnetConfig& c, const supernet::SearchSpace& sp) {
  auto pick = [&](const std::map<std::string, int64_t>& m) {
    auto it = m.find(d.name);
    return it == m.end() ? d.choices.back() : it->second;
  };
  if (d.kind == Dim::Width) return pick(c.widths);
  if (d.kind == Dim::Kernel) return pick(c.kernels);
  return c.resolution ? c.resolution : sp.resolutions.back();
}

}  // namespace

SpaceConfigs unique_configs(const supernet::Supernet& s) {
  SpaceConfigs out;
  out.log10_subnets = s.space().log10_size();
  std::set<std::string> seen, edge_seen;
  std::map<std::pair<std::string, std::string>, std::vector<EdgeConfig>> candidates;
  out.subnets_derived = visit_covering(
      s, coverage(s),
      [&](const supernet::SubnetConfig& c, std::shared_ptr<const ir::Graph> g, const Steps& st) {
        out.covering.push_back(c);
        out.covering_keys.push_back(st.keys);
        for (size_t k = 0; k < st.keys.size(); ++k)
          if (seen.insert(st.keys[k]).second)
            out.configs.push_back({st.keys[k], extract(*g, {&st.plan[k]})});
        for_each_edge(*g, st, [&](size_t a, size_t b, size_t slot, int t) {
          std::string key = fmt::format("{} >{}> {}", st.keys[a], slot, st.keys[b]);
          if (!edge_seen.insert(key).second) return;
          EdgeConfig e{key,
                       st.keys[a],
                       st.keys[b],
                       step_kind(st.keys[a]),
                       step_kind(st.keys[b]),
                       tensor_bytes(g->tensor(t)),
                       extract(*g, {&st.plan[a], &st.plan[b]})};
          candidates[{e.producer_kind, e.consumer_kind}].push_back(std::move(e));
        });
      });
  // A sample per pair of kinds, spread evenly over the tensor sizes (ties by key: stable).
  for (auto& [kinds, list] : candidates) {
    out.unique_edges += list.size();
    std::sort(list.begin(), list.end(), [](const EdgeConfig& x, const EdgeConfig& y) {
      return std::tie(x.bytes, x.key) < std::tie(y.bytes, y.key);
    });
    size_t n = list.size(), keep = std::min(n, kEdgesPerKindPair);
    std::set<size_t> picked;
    for (size_t i = 0; i < keep; ++i)
      picked.insert(keep == 1 ? n / 2 : (i * (n - 1) + (keep - 1) / 2) / (keep - 1));
    for (size_t i : picked) out.edges.push_back(std::move(list[i]));
  }
  return out;
}

struct LatencyModel::Impl {
  std::vector<Dim> dims;
  struct Step {
    std::vector<int> dims;
    std::vector<size_t> stride;
    std::vector<double> ms;        // NaN where no covering subnet had the combination
    int stage = -1, position = 0;  // in a skippable block: kept while position < depth
  };
  std::vector<Step> steps;
  std::vector<std::string> stages;
  const supernet::SearchSpace* space = nullptr;
  double overhead = 0, floor_ratio = 0;  // step tables hold calibrated contributions
  bool exact = false;                    // counts (MACs, parameters), not times
  // Where each dim and each stage's depth sit in a SubnetCode (-1: a stage with one choice).
  std::vector<int> dim_position, stage_position;
  std::vector<int64_t> stage_full;

  double sum(const size_t* idx, const int64_t* depth) const {
    double total = 0;
    for (const Step& st : steps) {
      if (st.stage >= 0 && st.position >= depth[st.stage]) continue;
      size_t at = 0;
      for (size_t d = 0; d < st.dims.size(); ++d) at += idx[st.dims[d]] * st.stride[d];
      double v = st.ms[at];
      if (std::isnan(v)) fail("internal: a step combination was never covered");
      total += v;
    }
    return LatencyTable::total(overhead, floor_ratio, total);
  }
};

namespace {

// Fills the step tables of `m` from the covering subnets: `values(graph, plan)` gives each
// step's contribution (ms, MACs or parameters) in plan order.
void fill_step_tables(
    LatencyModel::Impl& m, const supernet::Supernet& s,
    const std::function<std::vector<double>(const ir::Graph&, const Steps&)>& values) {
  const supernet::SearchSpace& sp = s.space();
  Coverage cv = coverage(s);
  m.dims = cv.dims;
  m.space = &sp;
  std::map<std::string, std::pair<int, int>> block_of;  // node -> (stage, position)
  for (size_t si = 0; si < sp.stages.size(); ++si) {
    m.stages.push_back(sp.stages[si].name);
    for (size_t p = 0; p < sp.stages[si].blocks.size(); ++p)
      for (const std::string& n : sp.blocks[sp.stages[si].blocks[p]].nodes)
        block_of[n] = {static_cast<int>(si), static_cast<int>(p)};
  }
  std::vector<supernet::Position> pos = supernet::positions(sp);
  auto position_of = [&](supernet::Position::Kind k, const std::string& name) {
    for (size_t i = 0; i < pos.size(); ++i)
      if (pos[i].kind == k && pos[i].name == name) return static_cast<int>(i);
    return -1;
  };
  for (const Dim& d : m.dims)
    m.dim_position.push_back(position_of(d.kind == Dim::Width ? supernet::Position::Kind::Width
                                         : d.kind == Dim::Kernel
                                             ? supernet::Position::Kind::Kernel
                                             : supernet::Position::Kind::Resolution,
                                         d.name));
  for (const supernet::Stage& st : sp.stages) {
    m.stage_position.push_back(position_of(supernet::Position::Kind::Depth, st.name));
    m.stage_full.push_back(st.choices.back());
  }
  std::map<std::string, int> step_of;
  for (const StepDims& sd : cv.steps) {
    LatencyModel::Impl::Step st;
    st.dims = sd.dims;
    size_t n = 1;
    for (int d : sd.dims) {
      st.stride.push_back(n);
      n *= m.dims[d].choices.size();
    }
    st.ms.assign(n, std::numeric_limits<double>::quiet_NaN());
    auto b = block_of.find(sd.head);
    if (b != block_of.end()) std::tie(st.stage, st.position) = b->second;
    step_of[sd.head] = static_cast<int>(m.steps.size());
    m.steps.push_back(std::move(st));
  }
  visit_covering(
      s, cv,
      [&](const supernet::SubnetConfig& c, std::shared_ptr<const ir::Graph> g, const Steps& plan) {
        std::vector<double> v = values(*g, plan);
        for (size_t k = 0; k < plan.plan.size(); ++k) {
          auto it = step_of.find(g->nodes[plan.plan[k].nodes[0]].name);
          if (it == step_of.end()) {
            if (v[k] != 0 && m.exact)
              fail("internal: step '{}' of a covering subnet is not a step of the max subnet",
                   g->nodes[plan.plan[k].nodes[0]].name);
            continue;
          }
          LatencyModel::Impl::Step& st = m.steps[it->second];
          size_t at = 0;
          for (size_t d = 0; d < st.dims.size(); ++d) {
            const Dim& dim = m.dims[st.dims[d]];
            int64_t val = dim_value(dim, c, sp);
            size_t i = std::find(dim.choices.begin(), dim.choices.end(), val) - dim.choices.begin();
            at += i * st.stride[d];
          }
          st.ms[at] = v[k];
        }
      });
}

// Each step's MACs or parameters (a constant read by several steps counted once, by the
// first), as ir::graph_stats() and ir::Graph::parameter_count() count the whole graph.
std::vector<double> step_counts(const ir::Graph& g, const Steps& plan, Count what) {
  std::vector<double> out;
  std::set<int> counted;
  for (const auto& st : plan.plan) {
    double v = 0;
    for (int ni : st.nodes) {
      const ir::Node& n = g.nodes[ni];
      if (what == Count::Macs) {
        v += static_cast<double>(ops::node_macs(g, n));
        continue;
      }
      for (int t : n.inputs) {
        if (t < 0 || !counted.insert(t).second) continue;
        const ir::Tensor& tt = g.tensor(t);
        if (tt.is_const() && (tt.dtype == ir::DType::Float32 || tt.dtype == ir::DType::Float16 ||
                              tt.dtype == ir::DType::Float64))
          v += static_cast<double>(ir::numel(tt.shape));
      }
    }
    out.push_back(v);
  }
  return out;
}

}  // namespace

LatencyModel::LatencyModel(const supernet::Supernet& s, const LatencyTable& lut) {
  auto impl = std::make_shared<Impl>();
  impl->overhead = lut.overhead_ms;
  impl->floor_ratio = lut.floor_ratio;
  fill_step_tables(
      *impl, s, [&](const ir::Graph& g, const Steps& plan) { return step_times(g, plan, lut).ms; });
  impl_ = std::move(impl);
}

LatencyModel::LatencyModel(const supernet::Supernet& s, Count what) {
  auto impl = std::make_shared<Impl>();
  impl->exact = true;
  fill_step_tables(
      *impl, s, [&](const ir::Graph& g, const Steps& plan) { return step_counts(g, plan, what); });
  impl_ = std::move(impl);
}

double LatencyModel::predict(const supernet::SubnetConfig& c) const {
  const Impl& m = *impl_;
  std::vector<size_t> idx(m.dims.size());
  for (size_t d = 0; d < m.dims.size(); ++d) {
    const Dim& dim = m.dims[d];
    int64_t v = dim_value(dim, c, *m.space);
    idx[d] = std::find(dim.choices.begin(), dim.choices.end(), v) - dim.choices.begin();
    if (idx[d] == dim.choices.size())
      fail("subnet: {} = {} is not one of its choices", dim.name, v);
  }
  std::vector<int64_t> depth(m.stages.size());
  for (size_t si = 0; si < m.stages.size(); ++si) {
    auto it = c.depths.find(m.stages[si]);
    depth[si] = it == c.depths.end() ? m.stage_full[si] : it->second;
  }
  return m.sum(idx.data(), depth.data());
}

double LatencyModel::predict(const supernet::SubnetCode& code) const {
  const Impl& m = *impl_;
  // Small fixed buffers: this runs millions of times in a search.
  size_t idx[256];
  int64_t depth[256];
  if (m.dims.size() > 256 || m.stages.size() > 256) {
    return predict(supernet::decode(supernet::positions(*m.space), code));
  }
  for (size_t d = 0; d < m.dims.size(); ++d) idx[d] = code[m.dim_position[d]];
  for (size_t si = 0; si < m.stages.size(); ++si) {
    int p = m.stage_position[si];
    depth[si] = p < 0 ? m.stage_full[si] : m.space->stages[si].choices[code[p]];
  }
  return m.sum(idx, depth);
}

std::string lut_path(const std::string& dir, const std::string& device) {
  return (std::filesystem::path(dir) / ("lut_" + device + ".json")).string();
}

LatencyTable load_lut(const std::string& dir, const std::string& device) {
  std::string path = lut_path(dir, device);
  if (!std::filesystem::exists(path)) {
    (void)find_device(device);  // an unknown name is the real problem: say so first
    fail("no latency table for device '{}' in {}: run `autotailor profile {} --device {}`", device,
         dir, dir, device);
  }
  return LatencyTable::load(path);
}

LatencyTable LatencyTable::load(const std::string& path) {
  nlohmann::json j = parse_document(read_file(path), path, "autotailor-lut", "an autotailor LUT");
  LatencyTable t;
  t.device = j.value("device", "");
  t.runtime = j.value("runtime", "");
  t.dtype = j.value("dtype", "float32");
  t.date = j.value("date", "");
  t.version = j.value("version", "");
  t.threads = j.value("threads", 1);
  t.method = j.value("method", "isolated");
  t.batch = j.value("batch", int64_t{1});
  t.overhead_ms = j.value("overhead_ms", 0.0);
  t.scale = j.value("scale", 1.0);
  t.floor_ratio = j.value("floor_ratio", 0.0);
  t.ms_per_input_mb = j.value("ms_per_input_mb", 0.0);
  t.ms_per_weight_mb = j.value("ms_per_weight_mb", 0.0);
  t.calibration_model = j.value("calibration_model", "");
  t.calibration_subnets = j.value("calibration_subnets", 0);
  t.profiling_seconds = j.value("profiling_seconds", 0.0);
  const nlohmann::json none = nlohmann::json::object();
  const nlohmann::json& entries = j.contains("entries") ? j["entries"] : none;
  for (const auto& [key, e] : entries.items()) {
    LatencyEntry le;
    le.median_ms = e.value("median_ms", -1.0);
    le.p10_ms = e.value("p10_ms", le.median_ms);
    le.p90_ms = e.value("p90_ms", le.median_ms);
    le.runs = e.value("runs", 0);
    le.estimated = e.value("estimated", false);
    if (le.median_ms < 0) fail("{}: entry '{}' has no median_ms", path, key);
    t.entries[key] = le;
  }
  if (j.contains("calibration"))
    for (const auto& [name, ms] : j["calibration"].items()) t.calibration[name] = ms.get<double>();
  if (j.contains("speed_reference")) {
    t.reference_ms = j["speed_reference"].value("median_ms", 0.0);
    t.reference_samples = j["speed_reference"].value("samples", 0);
    t.relative = j["speed_reference"].value("relative", false);
    if (!(t.reference_ms >= 0)) fail("{}: speed_reference.median_ms is negative", path);
  }
  if (j.contains("fusion")) {
    const nlohmann::json& f = j["fusion"];
    if (f.contains("pairs"))
      for (const auto& [id, p] : f["pairs"].items())
        t.pairs[id] = {p.value("producer", ""), p.value("consumer", ""),
                       p.value("bytes", int64_t{0}), p.value("median_ms", 0.0)};
    if (f.contains("rules"))
      for (const auto& r : f["rules"])
        t.rules.push_back({r.value("producer", ""), r.value("consumer", ""), r.value("pairs", 0),
                           r.value("intercept_ms", 0.0), r.value("ms_per_mb", 0.0),
                           r.value("median_saving_ms", 0.0), r.value("median_share", 0.0),
                           r.value("max_share", 0.0), r.value("detected", false)});
  }
  return t;
}

void LatencyTable::save(const std::string& path) const {
  nlohmann::json entries = nlohmann::json::object();
  for (const auto& [key, e] : this->entries) {
    nlohmann::json je = {
        {"median_ms", e.median_ms}, {"p10_ms", e.p10_ms}, {"p90_ms", e.p90_ms}, {"runs", e.runs}};
    if (e.estimated) je["estimated"] = true;
    entries[key] = je;
  }
  nlohmann::json j = {{"format", "autotailor-lut"},
                      {"device", device},
                      {"runtime", runtime},
                      {"threads", threads},
                      {"method", method},
                      {"dtype", dtype},
                      {"batch", batch},
                      {"date", date},
                      {"version", version},
                      {"overhead_ms", overhead_ms},
                      {"scale", scale},
                      {"floor_ratio", floor_ratio},
                      {"ms_per_input_mb", ms_per_input_mb},
                      {"ms_per_weight_mb", ms_per_weight_mb},
                      {"calibration_model", calibration_model},
                      {"calibration_subnets", calibration_subnets},
                      {"profiling_seconds", profiling_seconds},
                      {"entries", entries}};
  if (!calibration.empty()) j["calibration"] = calibration;
  if (reference_ms > 0)
    j["speed_reference"] = {{"subnet", "max"},
                            {"median_ms", reference_ms},
                            {"samples", reference_samples},
                            {"relative", relative}};
  if (!pairs.empty() || !rules.empty()) {
    nlohmann::json jp = nlohmann::json::object(), jr = nlohmann::json::array();
    for (const auto& [id, p] : pairs)
      jp[id] = {{"producer", p.producer},
                {"consumer", p.consumer},
                {"bytes", p.bytes},
                {"median_ms", p.median_ms}};
    for (const FusionRule& r : rules)
      jr.push_back({{"producer", r.producer},
                    {"consumer", r.consumer},
                    {"pairs", r.pairs},
                    {"intercept_ms", r.intercept_ms},
                    {"ms_per_mb", r.ms_per_mb},
                    {"median_saving_ms", r.median_saving_ms},
                    {"median_share", r.median_share},
                    {"max_share", r.max_share},
                    {"detected", r.detected}});
    j["fusion"] = {{"rules", jr}, {"pairs", jp}};
  }
  write_file_atomic(path, j.dump(1) + "\n");
}

Prediction predict(const supernet::Supernet& s, const LatencyTable& lut,
                   const supernet::SubnetConfig& c) {
  Prediction p;
  std::shared_ptr<const ir::Graph> g = s.derive(c);
  Steps st = plan_of(g);
  StepTimes t = step_times(*g, st, lut);
  double steps_ms = 0;
  for (size_t k = 0; k < st.keys.size(); ++k) {
    p.steps.emplace_back(st.keys[k], t.ms[k]);
    steps_ms += t.ms[k];
    p.fusion_saving_ms += t.saving[k];
  }
  p.latency_ms = lut.total(steps_ms);
  return p;
}

SubnetFeatures subnet_features(const supernet::Supernet& s, const LatencyTable& lut,
                               const supernet::SubnetConfig& c) {
  std::shared_ptr<const ir::Graph> g = s.derive(c);
  Steps st = plan_of(g);
  StepTimes t = step_times(*g, st, lut);
  SubnetFeatures f;
  for (size_t k = 0; k < st.keys.size(); ++k) {
    f.steps_ms += t.raw[k];
    f.input_mb += t.input_mb[k];
    f.weight_mb += t.weight_mb[k];
  }
  return f;
}

std::vector<double> fit_relative(const std::vector<std::vector<double>>& x,
                                 const std::vector<double>& y) {
  const size_t n = x.empty() ? 0 : x[0].size();
  // Normal equations of the weighted problem, solved by Gaussian elimination with pivoting.
  std::vector<std::vector<double>> a(n, std::vector<double>(n + 1, 0.0));
  for (size_t i = 0; i < x.size(); ++i) {
    double w = 1.0 / (y[i] * y[i]);
    for (size_t r = 0; r < n; ++r) {
      for (size_t c = 0; c < n; ++c) a[r][c] += w * x[i][r] * x[i][c];
      a[r][n] += w * x[i][r] * y[i];
    }
  }
  for (size_t c = 0; c < n; ++c) {
    size_t piv = c;
    for (size_t r = c + 1; r < n; ++r)
      if (std::abs(a[r][c]) > std::abs(a[piv][c])) piv = r;
    if (std::abs(a[piv][c]) < 1e-12) return {};
    std::swap(a[c], a[piv]);
    for (size_t r = 0; r < n; ++r) {
      if (r == c) continue;
      double f = a[r][c] / a[c][c];
      for (size_t k = c; k <= n; ++k) a[r][k] -= f * a[c][k];
    }
  }
  std::vector<double> coef(n);
  for (size_t c = 0; c < n; ++c) coef[c] = a[c][n] / a[c][c];
  return coef;
}

std::vector<std::pair<std::string, supernet::SubnetConfig>> calibration_subnets(
    const supernet::SearchSpace& sp) {
  std::vector<std::pair<std::string, supernet::SubnetConfig>> out = {
      {"max", supernet::max_subnet(sp)}, {"min", supernet::min_subnet(sp)}};
  for (uint64_t seed = 1001; seed <= 1000 + kCalibrationRandom; ++seed)
    out.emplace_back(fmt::format("random:{}", seed), supernet::random_subnet(sp, seed));
  return out;
}

namespace {

// The smallest measured / calibrated-sum ratio over the fit's points: no prediction falls
// below it times its own calibrated sum (LatencyTable::total), whatever the intercept.
double floor_ratio_of(const std::vector<double>& calibrated, const std::vector<double>& measured) {
  double r = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < calibrated.size(); ++i)
    if (calibrated[i] > 0 && measured[i] > 0) r = std::min(r, measured[i] / calibrated[i]);
  return std::isfinite(r) ? r : 0.0;
}

}  // namespace

OverheadScale fit_overhead_scale(const std::vector<double>& predicted,
                                 const std::vector<double>& measured) {
  std::vector<std::vector<double>> x;
  for (double p : predicted) x.push_back({1.0, p});
  std::vector<double> c = fit_relative(x, measured);
  OverheadScale f;
  if (c.empty() || c[1] <= 0) {
    // No positive scale with an intercept: the scale alone.
    for (auto& row : x) row.erase(row.begin());
    std::vector<double> s = fit_relative(x, measured);
    if (s.empty() || s[0] <= 0) return f;
    c = {0.0, s[0]};
  }
  f.overhead_ms = c[0];
  f.scale = c[1];
  // A negative intercept is what the measurements say (small subnets run below the line through
  // the large ones: less of them is cold), but it would predict nothing for a small enough
  // subnet: the floor keeps every prediction above the lowest measured ratio.
  // (With an overhead >= 0 the line itself stays positive, and the ratio falls with size, so a
  // floor would cut into the line for large subnets: none.)
  if (f.overhead_ms < 0) {
    std::vector<double> calibrated;
    for (double p : predicted) calibrated.push_back(f.scale * p);
    f.floor_ratio = floor_ratio_of(calibrated, measured);
  }
  return f;
}

std::string fit_calibration(const supernet::Supernet& s, LatencyTable& lut) {
  std::vector<SubnetFeatures> f;
  std::vector<double> y;
  for (const auto& [name, cfg] : calibration_subnets(s.space())) {
    auto it = lut.calibration.find(name);
    if (it == lut.calibration.end() || it->second <= 0) return "";
    f.push_back(subnet_features(s, lut, cfg));
    y.push_back(it->second);
  }
  auto row = [&](bool bytes, size_t i) {
    return bytes ? std::vector<double>{1.0, f[i].steps_ms, f[i].input_mb, f[i].weight_mb}
                 : std::vector<double>{1.0, f[i].steps_ms};
  };
  // The fit on every calibration subnet but `skip` (f.size(): on all of them).
  auto fit = [&](bool bytes, size_t skip) {
    std::vector<std::vector<double>> x;
    std::vector<double> v;
    for (size_t i = 0; i < f.size(); ++i)
      if (i != skip) {
        x.push_back(row(bytes, i));
        v.push_back(y[i]);
      }
    return fit_relative(x, v);
  };
  // Leave-one-out mean relative error of a model over the random calibration subnets (the
  // max and the min stay in every fit: predicting an extreme from the others says little about
  // the subnets a search visits); infinite when a fit fails or scales the steps by a
  // non-positive factor.
  auto loo = [&](bool bytes) {
    double e = 0;
    for (size_t i = 2; i < f.size(); ++i) {
      std::vector<double> c = fit(bytes, i), xi = row(bytes, i);
      if (c.empty() || c[1] <= 0) return std::numeric_limits<double>::infinity();
      double p = 0;
      for (size_t k = 0; k < c.size(); ++k) p += c[k] * xi[k];
      e += std::abs(p - y[i]) / y[i] / static_cast<double>(f.size() - 2);
    }
    return e;
  };
  double e_sum = loo(false), e_bytes = loo(true);
  bool bytes = e_bytes < e_sum;
  std::vector<double> c = fit(bytes, f.size());
  if (c.empty() || c[1] <= 0) return "";
  lut.overhead_ms = c[0];
  lut.scale = c[1];
  lut.ms_per_input_mb = bytes ? c[2] : 0.0;
  lut.ms_per_weight_mb = bytes ? c[3] : 0.0;
  lut.floor_ratio = 0;
  if (c[0] < 0) {  // as in fit_overhead_scale
    std::vector<double> calibrated;
    for (size_t i = 0; i < f.size(); ++i) {
      std::vector<double> xi = row(bytes, i);
      double p = 0;
      for (size_t k = 1; k < c.size(); ++k) p += c[k] * xi[k];
      calibrated.push_back(p);
    }
    lut.floor_ratio = floor_ratio_of(calibrated, y);
  }
  lut.calibration_model = bytes ? "sum+bytes" : "sum";
  lut.calibration_subnets = static_cast<int>(f.size());
  return fmt::format(
      "from {} whole subnets: latency = {:.3f} ms + {:.3f} x sum of steps{} (leave-one-out mean "
      "error on the random ones {:.1f}% with input and weight bytes, {:.1f}% without)",
      f.size(), lut.overhead_ms, lut.scale,
      bytes ? fmt::format(" + {:.4f} ms/MB of step inputs + {:.4f} ms/MB of weights",
                          lut.ms_per_input_mb, lut.ms_per_weight_mb)
            : std::string(),
      100 * e_bytes, 100 * e_sum);
}

void LatencyTable::fit_fusion_rules() {
  struct Point {
    double mb, saving, share;
  };
  std::map<std::pair<std::string, std::string>, std::vector<Point>> by_kinds;
  for (const auto& [id, pm] : pairs) {
    auto a = entries.find(pm.producer), b = entries.find(pm.consumer);
    if (a == entries.end() || b == entries.end() || a->second.estimated || b->second.estimated)
      continue;
    double sum = a->second.median_ms + b->second.median_ms;
    double saving = sum - pm.median_ms;
    by_kinds[{step_kind(pm.producer), step_kind(pm.consumer)}].push_back(
        {static_cast<double>(pm.bytes) / 1e6, saving, sum > 0 ? saving / sum : 0});
  }
  rules.clear();
  for (auto& [kinds, pts] : by_kinds) {
    FusionRule r;
    std::tie(r.producer, r.consumer) = kinds;
    r.pairs = static_cast<int>(pts.size());
    auto median = [](const std::vector<double>& v) { return exec::summarize(v).median_ms; };
    std::vector<double> sv, sh;
    for (const Point& p : pts) {
      sv.push_back(p.saving);
      sh.push_back(p.share);
    }
    r.median_saving_ms = median(sv);
    r.median_share = median(sh);
    // Saving against tensor size, robustly: one badly timed pair cannot tilt the line. With
    // fewer than 3 pairs or one size, a constant.
    std::vector<double> mb;
    for (const Point& p : pts) mb.push_back(p.mb);
    stats::Line line = stats::theil_sen(mb, sv, 3);
    r.ms_per_mb = line.slope;
    r.intercept_ms = line.intercept;
    r.max_share = std::clamp(*std::max_element(sh.begin(), sh.end()), 0.0, 1.0);
    r.detected = r.median_share >= kFusionMinShare;
    rules.push_back(r);
  }
}

double LatencyTable::boundary_saving(const std::string& producer_kind,
                                     const std::string& consumer_kind, int64_t bytes,
                                     double pair_ms) const {
  for (const FusionRule& r : rules)
    if (r.detected && r.producer == producer_kind && r.consumer == consumer_kind) {
      double v = r.intercept_ms + r.ms_per_mb * static_cast<double>(bytes) / 1e6;
      return std::clamp(v, 0.0, r.max_share * pair_ms);
    }
  return 0;
}

}  // namespace autotailor::latency
