// Each subcommand registers itself on the app; `main.cc` lists them in pipeline order.
#pragma once

#include <CLI/CLI.hpp>

namespace autotailor::cli {

void add_devices(CLI::App& app);
void add_inspect(CLI::App& app);
void add_run(CLI::App& app);
void add_bench(CLI::App& app);
void add_supernet(CLI::App& app);
void add_export(CLI::App& app);
void add_profile(CLI::App& app);
void add_predict(CLI::App& app);
void add_validate_latency(CLI::App& app);

// `run DIR --subnet SPEC`: a subnet of a SuperNet directory.
void run_subnet(const std::string& dir, const std::string& spec,
                const std::vector<std::string>& inputs, const std::vector<std::string>& outputs);

}  // namespace autotailor::cli
