// Each subcommand registers itself on the app; `main.cc` lists them in pipeline order.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>

#include "autotailor/supernet/supernet.h"
#include "autotailor/train/trainer.h"

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
void add_train(CLI::App& app);   // train, finetune, evaluate
void add_search(CLI::App& app);  // sensitivity, search, validate-accuracy
void add_compile(CLI::App& app);

// A subnet of the SuperNet in DIR as `run`, `export` and `evaluate` execute it: BatchNorm
// statistics recalibrated for it on the calibration split of `data_spec` (default: the data
// `finetune` recorded in DIR/finetune.json) when the SuperNet has BatchNorm.
std::shared_ptr<const ir::Graph> inference_subnet(const std::string& dir,
                                                  const supernet::Supernet& s,
                                                  const supernet::SubnetConfig& c,
                                                  const std::string& data_spec = "");

// The SuperNet as variants are exported: BatchNorm folded into the convs (latency keys must
// match what runs after export).
supernet::Supernet latency_view(const supernet::Supernet& s);

// A model to train, search or transform: imported with a fixed input batch taken as free
// (ImportOptions::free_batch; a clear error when the graph depends on it), and float16/float64
// converted to float32 (said once).
std::shared_ptr<ir::Graph> import_for_training(const std::string& path);

// `profile`: measures (host) or estimates (named devices) the LUT in DIR.
void profile_device(const supernet::Supernet& s, const std::string& dir, const std::string& device,
                    int threads, const std::string& method = "context");

// The process's arguments, for starting workers (`--nproc`).
void set_command_line(int argc, char** argv);

// `--nproc N` without RANK in the environment: starts N workers running this same command and
// waits for them (parent_done). Otherwise joins the process group the environment describes
// (collective is null when training alone).
struct DistributedLaunch {
  bool parent_done = false;
  std::unique_ptr<train::Collective> collective;
};
DistributedLaunch launch_processes(int nproc);

// `run DIR --subnet SPEC`: a subnet of a SuperNet directory.
void run_subnet(const std::string& dir, const std::string& spec,
                const std::vector<std::string>& inputs, const std::vector<std::string>& outputs);

}  // namespace autotailor::cli
