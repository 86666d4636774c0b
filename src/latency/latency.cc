#include "autotailor/latency/latency.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "../common/json_document.h"
#include "autotailor/common/error.h"
#include "autotailor/common/files.h"
#include "autotailor/exec/executor.h"
#include "autotailor/ir/dump.h"
#include "autotailor/latency/device.h"

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

// The step as a graph of its own: its computed inputs become graph inputs.
std::shared_ptr<ir::Graph> extract(const ir::Graph& g, const exec::Executor::StepInfo& s) {
  auto sg = std::make_shared<ir::Graph>();
  sg->name = "step";
  sg->source = g.source + " (one step)";
  sg->ir_version = g.ir_version;
  sg->opsets = g.opsets;
  std::map<int, int> id;
  std::set<int> produced;
  for (int ni : s.nodes)
    for (int o : g.nodes[ni].outputs) produced.insert(o);
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
  for (int ni : s.nodes) {
    ir::Node n = g.nodes[ni];
    for (int& t : n.inputs) t = map_tensor(t);
    for (int& t : n.outputs) t = map_tensor(t);
    sg->nodes.push_back(std::move(n));
  }
  for (int t : s.out) sg->outputs.push_back(map_tensor(t));
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

}  // namespace

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
  std::set<std::string> seen;
  out.subnets_derived = visit_covering(
      s, coverage(s),
      [&](const supernet::SubnetConfig& c, std::shared_ptr<const ir::Graph> g, const Steps& st) {
        out.covering.push_back(c);
        out.covering_keys.push_back(st.keys);
        for (size_t k = 0; k < st.keys.size(); ++k)
          if (seen.insert(st.keys[k]).second)
            out.configs.push_back({st.keys[k], extract(*g, st.plan[k])});
      });
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
  double overhead = 0, scale = 1;
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
    return overhead + scale * total;
  }
};

LatencyModel::LatencyModel(const supernet::Supernet& s, const LatencyTable& lut) {
  const supernet::SearchSpace& sp = s.space();
  Coverage cv = coverage(s);
  auto impl = std::make_shared<Impl>();
  Impl& m = *impl;
  m.dims = cv.dims;
  m.space = &sp;
  m.overhead = lut.overhead_ms;
  m.scale = lut.scale;
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
    Impl::Step st;
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
        for (size_t k = 0; k < plan.plan.size(); ++k) {
          auto it = step_of.find(g->nodes[plan.plan[k].nodes[0]].name);
          if (it == step_of.end()) continue;
          Impl::Step& st = m.steps[it->second];
          size_t at = 0;
          for (size_t d = 0; d < st.dims.size(); ++d) {
            const Dim& dim = m.dims[st.dims[d]];
            int64_t v = dim_value(dim, c, sp);
            size_t i = std::find(dim.choices.begin(), dim.choices.end(), v) - dim.choices.begin();
            at += i * st.stride[d];
          }
          auto e = lut.entries.find(plan.keys[k]);
          if (e == lut.entries.end())
            fail("the {} LUT has no entry for '{}': run `autotailor profile` again", lut.device,
                 plan.keys[k]);
          st.ms[at] = e->second.median_ms;
        }
      });
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
                      {"calibration_subnets", calibration_subnets},
                      {"profiling_seconds", profiling_seconds},
                      {"entries", entries}};
  write_file_atomic(path, j.dump(1) + "\n");
}

Prediction predict(const supernet::Supernet& s, const LatencyTable& lut,
                   const supernet::SubnetConfig& c) {
  Prediction p;
  for (const std::string& key : plan_of(s.derive(c)).keys) {
    auto it = lut.entries.find(key);
    if (it == lut.entries.end())
      fail("the {} LUT has no entry for '{}': run `autotailor profile` again", lut.device, key);
    p.steps.emplace_back(key, it->second.median_ms);
    p.latency_ms += it->second.median_ms;
  }
  p.latency_ms = lut.overhead_ms + lut.scale * p.latency_ms;
  return p;
}

}  // namespace autotailor::latency
