#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

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
    if (*json) {
      nlohmann::json d = {{"devices",
                           {{{"name", "host"},
                             {"kind", "measured"},
                             {"description", "this machine, measured with LibTorch"},
                             {"cpu", cpu},
                             {"cores", cores}}}}};
      std::cout << d.dump(2) << "\n";
    } else {
      std::cout << "host  measured  " << cpu << ", " << cores << " cores (LibTorch)\n";
    }
  });
}

}  // namespace autotailor::cli
