#include "autotailor/latency/bundle.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "autotailor/common/error.h"
#include "autotailor/common/files.h"
#include "autotailor/common/hash.h"
#include "autotailor/export/export.h"

namespace autotailor::latency {

namespace fs = std::filesystem;

std::string config_id(const std::string& key) {
  return fnv1a64_hex(key);
}

std::pair<int, int> parse_shard(const std::string& text) {
  int i = -1, n = 0;
  char slash = 0, extra = 0;
  std::istringstream in(text);
  if (!(in >> i >> slash >> n) || slash != '/' || (in >> extra) || n < 1 || i < 0 || i >= n)
    usage_fail("--shard {}: expected i/n with 0 <= i < n (e.g. 0/4)", text);
  return {i, n};
}

namespace {

nlohmann::json describe_inputs(const ir::Graph& g) {
  nlohmann::json ins = nlohmann::json::array();
  for (int id : g.inputs) {
    const ir::Tensor& t = g.tensor(id);
    ins.push_back(
        {{"name", t.name}, {"shape", t.shape}, {"dtype", std::string(ir::dtype_name(t.dtype))}});
  }
  return ins;
}

// One Relu on 8 floats: what a runtime charges for a call that does almost nothing.
std::shared_ptr<ir::Graph> call_overhead_graph(const ir::Graph& like) {
  auto g = std::make_shared<ir::Graph>();
  g->name = kCallOverheadId;
  g->source = "bundle reference model";
  g->ir_version = like.ir_version;
  g->opsets = like.opsets;
  auto tensor = [](std::string name) {
    ir::Tensor t;
    t.name = std::move(name);
    t.dtype = ir::DType::Float32;
    t.shape = {1, 8};
    return t;
  };
  int xi = g->add_tensor(tensor("x")), yi = g->add_tensor(tensor("y"));
  ir::Node n;
  n.name = "relu";
  n.op_type = "Relu";
  n.inputs = {xi};
  n.outputs = {yi};
  g->nodes.push_back(n);
  g->inputs = {xi};
  g->outputs = {yi};
  g->relink();
  return g;
}

}  // namespace

std::string whole_id(const std::string& subnet_name) {
  std::string id = "whole-" + subnet_name;
  std::replace(id.begin(), id.end(), ':', '-');
  return id;
}

BundleInfo write_bundle(const SpaceConfigs& cs, const std::string& device, const std::string& out,
                        int shard, int shards, const supernet::Supernet* whole) {
  if (cs.configs.empty()) fail("the space has no operator configurations to bundle");
  ensure_writable_dir(out);
  fs::create_directories(fs::path(out) / "models");
  BundleInfo info;
  info.total = cs.configs.size();
  nlohmann::json models = nlohmann::json::array();
  auto add = [&](const std::string& id, const std::string& key, const ir::Graph& g) {
    std::string rel = fmt::format("models/{}.onnx", id);
    export_graph(g, id, (fs::path(out) / rel).string());
    models.push_back({{"id", id}, {"file", rel}, {"key", key}, {"inputs", describe_inputs(g)}});
  };
  auto mine = [&](size_t i) { return static_cast<int>(i % static_cast<size_t>(shards)) == shard; };
  add(kCallOverheadId, "", *call_overhead_graph(*cs.configs[0].graph));
  for (size_t i = 0; i < cs.configs.size(); ++i) {
    if (!mine(i)) continue;
    add(config_id(cs.configs[i].key), cs.configs[i].key, *cs.configs[i].graph);
    ++info.configs;
  }
  for (size_t i = 0; i < cs.edges.size(); ++i) {
    if (!mine(i)) continue;
    const EdgeConfig& e = cs.edges[i];
    add(config_id(e.key), e.key, *e.graph);
    models.back()["pair"] = {config_id(e.producer), config_id(e.consumer)};
    ++info.pairs;
  }
  if (whole && shard == 0)
    for (const auto& [name, cfg] : calibration_subnets(whole->space())) {
      std::string id = whole_id(name), rel = fmt::format("models/{}.onnx", id);
      export_subnet(*whole, cfg, (fs::path(out) / rel).string());
      models.push_back({{"id", id},
                        {"file", rel},
                        {"key", ""},
                        {"whole", name},
                        {"inputs", describe_inputs(*whole->derive(cfg))}});
      ++info.whole;
    }
  nlohmann::json m = {{"format", "autotailor-bundle"},
                      {"device", device},
                      {"shard", fmt::format("{}/{}", shard, shards)},
                      {"configs_in_space", info.total},
                      {"configs", info.configs},
                      {"pairs", info.pairs},
                      {"edges_in_space", cs.unique_edges},
                      {"whole", info.whole},
                      {"results_csv", "id,median_ms[,p10_ms,p90_ms,runs]"},
                      {"models", models}};
  write_file_atomic((fs::path(out) / "manifest.json").string(), m.dump(1) + "\n");
  return info;
}

std::map<std::string, LatencyEntry> read_results_csv(const std::string& path) {
  std::istringstream in(read_file(path));
  std::string line;
  int line_no = 0;
  std::map<std::string, int> col;
  std::map<std::string, LatencyEntry> out;
  auto split = [](const std::string& l) {
    std::vector<std::string> f;
    std::string cur;
    for (char c : l) {
      if (c == ',') {
        f.push_back(cur);
        cur.clear();
      } else if (c != '\r' && c != ' ' && c != '\t' && c != '"') {
        cur.push_back(c);
      }
    }
    f.push_back(cur);
    return f;
  };
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line[0] == '#' || line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    std::vector<std::string> f = split(line);
    if (col.empty()) {
      for (size_t i = 0; i < f.size(); ++i) col[f[i]] = static_cast<int>(i);
      if (!col.count("id") || !col.count("median_ms"))
        fail("{}:{}: the header must name the columns id and median_ms (got '{}')", path, line_no,
             line);
      continue;
    }
    auto num = [&](const std::string& name, double dflt) {
      auto it = col.find(name);
      if (it == col.end()) return dflt;
      if (static_cast<size_t>(it->second) >= f.size() || f[it->second].empty())
        fail("{}:{}: missing {}", path, line_no, name);
      try {
        size_t used = 0;
        double v = std::stod(f[it->second], &used);
        if (used != f[it->second].size() || !std::isfinite(v) || v < 0) throw std::exception();
        return v;
      } catch (...) {
        fail("{}:{}: {} '{}' is not a non-negative number", path, line_no, name, f[it->second]);
      }
    };
    if (static_cast<size_t>(col["id"]) >= f.size() || f[col["id"]].empty())
      fail("{}:{}: missing id", path, line_no);
    LatencyEntry e;
    e.median_ms = num("median_ms", 0);
    e.p10_ms = num("p10_ms", e.median_ms);
    e.p90_ms = num("p90_ms", e.median_ms);
    double runs = num("runs", 0);
    if (runs != std::floor(runs) || runs > std::numeric_limits<int>::max())
      fail("{}:{}: runs '{}' is not a count (a whole number up to {})", path, line_no, runs,
           std::numeric_limits<int>::max());
    e.runs = static_cast<int>(runs);
    std::string id = f[col["id"]];
    if (out.count(id)) fail("{}:{}: id {} appears twice", path, line_no, id);
    out[id] = e;
  }
  if (col.empty()) fail("{}: empty (expected a header id,median_ms,...)", path);
  if (out.empty()) fail("{}: no measurements", path);
  return out;
}

}  // namespace autotailor::latency
