#include "autotailor/latency/device.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "autotailor/common/error.h"
#include "autotailor/common/files.h"
#include "autotailor/ops/ops.h"

namespace autotailor::latency {

namespace {

// Efficiencies are assumptions of the estimate, not measurements (docs/devices.md): typical
// shares of peak that mobile inference runtimes reach on each op kind with NEON kernels.
std::map<std::string, double> arm_efficiency() {
  return {{"conv", 0.45},       {"depthwise", 0.12}, {"gemm", 0.5},
          {"elementwise", 1.0}, {"pool", 1.0},       {"other", 0.2}};
}

std::vector<Device> named_devices() {
  std::vector<Device> d;
  d.push_back(
      {"exynos1380",
       "Samsung Exynos 1380 (Galaxy A54 class), CPU big cluster",
       "estimated",
       "4x Cortex-A78 @ 2.4 GHz + 4x Cortex-A55 @ 2.0 GHz, Mali-G68 MP5 (CPU big cluster used)",
       4,
       2.4,
       16,
       12.0,
       8,
       arm_efficiency(),
       {"Samsung Exynos 1380 product page: 4x A78 2.4 GHz, 4x A55 2.0 GHz, Mali-G68 MP5, "
        "LPDDR4X/LPDDR5",
        "Arm Cortex-A78 TRM: two 128-bit NEON FMA pipes (4 fp32 lanes x 2 FLOP x 2 = 16 "
        "FLOP/cycle)",
        "LPDDR4X-4266 dual 16-bit channels: 17 GB/s peak, ~70% sustained"}});
  d.push_back({"snapdragon8gen2",
               "Qualcomm Snapdragon 8 Gen 2, CPU prime + performance cores",
               "estimated",
               "1x Cortex-X3 @ 3.2 GHz + 2x Cortex-A715 @ 2.8 GHz + 2x Cortex-A710 @ 2.8 GHz + 3x "
               "Cortex-A510 @ 2.0 GHz (5 big cores used)",
               5,
               2.9,
               18,
               40.0,
               6,
               arm_efficiency(),
               {"Qualcomm Snapdragon 8 Gen 2 product brief: 1+2+2+3 cores, LPDDR5X 4200 MHz",
                "Cortex-X3: four 128-bit FMA pipes (32 FLOP/cycle); A715/A710: two (16); averaged "
                "over 5 cores at 2.9 GHz",
                "LPDDR5X-8400 64-bit: 67 GB/s peak, ~60% sustained"}});
  d.push_back({"raspberrypi4",
               "Raspberry Pi 4 Model B (BCM2711)",
               "estimated",
               "4x Cortex-A72 @ 1.5 GHz",
               4,
               1.5,
               8,
               4.0,
               15,
               arm_efficiency(),
               {"Raspberry Pi 4 Model B datasheet: BCM2711, 4x Cortex-A72 1.5 GHz, LPDDR4-3200",
                "Cortex-A72: 128-bit NEON, one FMA per cycle (8 FLOP/cycle)",
                "measured STREAM results reported for the Pi 4: ~4 GB/s"}});
  d.push_back(
      {"jetson-nano-cpu",
       "NVIDIA Jetson Nano, CPU only",
       "estimated",
       "4x Cortex-A57 @ 1.43 GHz",
       4,
       1.43,
       8,
       10.0,
       12,
       arm_efficiency(),
       {"NVIDIA Jetson Nano module datasheet: 4x Cortex-A57 1.43 GHz, 4 GB LPDDR4 25.6 GB/s",
        "Cortex-A57: 128-bit NEON, one FMA per cycle (8 FLOP/cycle)",
        "25.6 GB/s peak, ~40% sustained from the CPU"}});
  return d;
}

Device from_json(const nlohmann::json& j, const std::string& source) {
  try {
    Device d;
    d.name = j.at("name").get<std::string>();
    d.description = j.value("description", "");
    d.kind = "estimated";
    d.cpu = j.value("cpu", "");
    d.cores = j.at("cores").get<int>();
    d.ghz = j.at("ghz").get<double>();
    d.flops_per_cycle = j.at("flops_per_cycle").get<double>();
    d.memory_gbps = j.at("memory_gbps").get<double>();
    d.op_overhead_us = j.at("op_overhead_us").get<double>();
    d.efficiency = arm_efficiency();
    if (j.contains("efficiency"))
      for (const auto& [k, v] : j.at("efficiency").items()) d.efficiency[k] = v.get<double>();
    d.sources = j.value("sources", std::vector<std::string>{});
    if (d.cores < 1 || d.ghz <= 0 || d.flops_per_cycle <= 0 || d.memory_gbps <= 0 ||
        d.op_overhead_us < 0)
      fail("{}: cores, ghz, flops_per_cycle and memory_gbps must be positive", source);
    return d;
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not a device descriptor ({})", source, e.what());
  }
}

std::string op_kind(const ir::Graph& g, const ir::Node& n) {
  const std::string& t = n.op_type;
  if (t == "Conv") {
    int64_t group = n.attr_int("group", 1);
    return group > 1 && group == g.tensor(n.outputs[0]).shape.at(1) ? "depthwise" : "conv";
  }
  if (t == "Gemm" || t == "MatMul") return "gemm";
  if (t.find("Pool") != std::string::npos) return "pool";
  static const std::set<std::string> elementwise = {
      "Relu",      "Clip",      "Add",       "Mul",         "Sub",
      "Div",       "Sigmoid",   "HardSwish", "HardSigmoid", "BatchNormalization",
      "Tanh",      "LeakyRelu", "Identity",  "Reshape",     "Flatten",
      "Transpose", "Concat",    "Split",     "Slice",       "Squeeze",
      "Unsqueeze"};
  return elementwise.count(t) ? "elementwise" : "other";
}

}  // namespace

std::vector<Device> devices() {
  Device host;
  host.name = "host";
  host.description = "this machine, measured with LibTorch";
  host.kind = "measured";
  Device ort;
  ort.name = "host-ort";
  ort.description =
      "this machine, measured with ONNX Runtime (onnxruntime-node) through a bundle of "
      "standalone step models, the on-device flow";
  ort.kind = "ort";
  std::vector<Device> all{host, ort};
  for (Device& d : named_devices()) all.push_back(std::move(d));
  return all;
}

Device find_device(const std::string& name) {
  if (name.size() > 5 && name.substr(name.size() - 5) == ".json") {
    nlohmann::json j = nlohmann::json::parse(read_file(name), nullptr, false);
    if (j.is_discarded()) fail("{}: not valid JSON", name);
    return from_json(j, name);
  }
  std::vector<std::string> names;
  for (Device& d : devices()) {
    if (d.name == name) return d;
    names.push_back(d.name);
  }
  fail("--device: unknown device '{}' (known: {}; or a descriptor .json file)", name,
       fmt::join(names, ", "));
}

LatencyEntry estimate(const Device& d, const ir::Graph& g) {
  // The step's head decides the kind; fused element-wise successors add their bytes only.
  double seconds = 0, bytes = 0;
  std::set<int> counted;
  auto add_bytes = [&](int t) {
    if (t < 0 || !counted.insert(t).second) return;
    bytes += static_cast<double>(ir::numel(g.tensor(t).shape)) * 4.0;
  };
  double flops = 0;
  std::string kind = "elementwise";
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& n = g.nodes[i];
    flops += 2.0 * static_cast<double>(ops::node_macs(g, n));
    if (i == 0) kind = op_kind(g, n);
  }
  for (int t : g.inputs) add_bytes(t);
  for (int t : g.outputs) add_bytes(t);
  for (size_t t = 0; t < g.tensors.size(); ++t)
    if (g.tensors[t].is_const()) add_bytes(static_cast<int>(t));
  auto eff = d.efficiency.find(kind);
  double e = eff == d.efficiency.end() ? 0.2 : eff->second;
  double compute = flops / (d.peak_gflops() * 1e9 * e);
  double memory = bytes / (d.memory_gbps * 1e9);
  seconds = std::max(compute, memory) + d.op_overhead_us * 1e-6;
  LatencyEntry le;
  le.median_ms = le.p10_ms = le.p90_ms = seconds * 1e3;
  le.runs = 0;
  le.estimated = true;
  return le;
}

}  // namespace autotailor::latency
