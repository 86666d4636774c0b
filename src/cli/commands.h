// Each subcommand registers itself on the app; `main.cc` lists them in pipeline order.
#pragma once

#include <CLI/CLI.hpp>

namespace autotailor::cli {

void add_devices(CLI::App& app);
void add_inspect(CLI::App& app);
void add_run(CLI::App& app);
void add_bench(CLI::App& app);

}  // namespace autotailor::cli
