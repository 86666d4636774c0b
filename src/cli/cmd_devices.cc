#include <fmt/format.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "autotailor/latency/device.h"
#include "commands.h"

namespace autotailor::cli {

namespace {
std::string host_cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}
}  // namespace

void add_devices(CLI::App& app) {
  auto* cmd = app.add_subcommand("devices", "List the target devices latency can be profiled for");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "Print JSON to stdout");
  cmd->callback([json] {
    unsigned cores = std::thread::hardware_concurrency();
    std::string cpu = host_cpu_model();
    nlohmann::json list = nlohmann::json::array();
    for (const latency::Device& d : latency::devices()) {
      if (d.kind == "measured" || d.kind == "ort") {
        list.push_back({{"name", d.name},
                        {"kind", d.kind},
                        {"description", d.description},
                        {"cpu", cpu},
                        {"cores", cores}});
        if (!*json)
          std::cout << fmt::format("{:<16} measured   {}, {} cores ({})\n", d.name, cpu, cores,
                                   d.kind == "ort" ? "ONNX Runtime, via bundles" : "LibTorch");
        continue;
      }
      list.push_back({{"name", d.name},
                      {"kind", d.kind},
                      {"description", d.description},
                      {"cpu", d.cpu},
                      {"cores", d.cores},
                      {"ghz", d.ghz},
                      {"flops_per_cycle", d.flops_per_cycle},
                      {"peak_gflops", d.peak_gflops()},
                      {"memory_gbps", d.memory_gbps},
                      {"op_overhead_us", d.op_overhead_us},
                      {"efficiency", d.efficiency},
                      {"sources", d.sources}});
      if (!*json)
        std::cout << fmt::format("{:<16} estimated  {} ({:.0f} GFLOP/s peak, {:.0f} GB/s)\n",
                                 d.name, d.cpu, d.peak_gflops(), d.memory_gbps);
    }
    if (*json) std::cout << nlohmann::json{{"devices", list}}.dump(2) << "\n";
  });
}

}  // namespace autotailor::cli
