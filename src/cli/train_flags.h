// Options shared by `train`, `finetune` and `evaluate`: the data and how it is prepared, and
// the training hyper-parameters.
#pragma once

#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>
#include <optional>

#include "autotailor/search/search.h"
#include "autotailor/train/trainer.h"
#include "budget_flags.h"

namespace autotailor::cli {

struct DataFlags {
  std::string spec;
  std::vector<float> mean, std;
  size_t holdout = 0;  // 0: min(5000, a tenth of the training set)
  uint64_t split_seed = 0;
  size_t calibration_images = 2000;
  int workers = 2;

  void add(CLI::App* cmd, bool required = true) {
    auto* d = cmd->add_option("--data", spec, "fashion-mnist, idx:DIR or folder:DIR");
    if (required) d->required();
    cmd->add_option("--mean", mean, "Normalisation mean: one value or one per channel (default 0)")
        ->delimiter(',');
    cmd->add_option("--std", std, "Normalisation std: one value or one per channel (default 1)")
        ->delimiter(',');
    cmd->add_option("--holdout", holdout,
                    "Training images held out for BatchNorm calibration and accuracy probes "
                    "(default min(5000, 10%))");
    cmd->add_option("--split-seed", split_seed, "Seed of the hold-out split");
    cmd->add_option("--calibration-images", calibration_images,
                    "Held-out images BatchNorm statistics are measured on")
        ->check(CLI::Range(16, 1000000));
    cmd->add_option("--workers", workers, "Data loading threads")->check(CLI::Range(1, 64));
  }

  // Opens the data and checks it against the model.
  train::TrainData open(const train::ModelShape& m) const;
};

struct TrainFlags {
  train::TrainOptions o;

  void add(CLI::App* cmd) {
    cmd->add_option("--epochs", o.epochs, "Passes over the training split")
        ->check(CLI::Range(0, 100000));
    cmd->add_option("--batch", o.batch_size, "Global batch size")->check(CLI::Range(1, 65536));
    cmd->add_option("--optimizer", o.optimizer, "sgd or adamw")
        ->check(CLI::IsMember({"sgd", "adamw"}));
    cmd->add_option("--lr", o.lr, "Peak learning rate (default 0.05 sgd, 0.001 adamw, x batch/64)")
        ->check(CLI::Range(0.0, 100.0));
    cmd->add_option("--momentum", o.momentum, "SGD momentum (Nesterov)")
        ->check(CLI::Range(0.0, 0.999));
    cmd->add_option("--weight-decay", o.weight_decay, "(default 5e-5 sgd, 0.01 adamw)")
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--warmup-epochs", o.warmup_epochs, "Linear warm-up before the cosine decay")
        ->check(CLI::Range(0.0, 1000.0));
    cmd->add_option("--label-smoothing", o.label_smoothing)->check(CLI::Range(0.0, 0.99));
    cmd->add_option("--checkpoint-every", o.checkpoint_every, "Steps between checkpoints")
        ->check(CLI::Range(1, 1 << 30));
    cmd->add_option("--seed", o.seed, "Seed of the data order and the random subnets");
    cmd->add_option("--max-steps", o.max_steps, "Stop after this many steps (for quick checks)")
        ->check(CLI::Range(0, 1 << 30));
  }
};

// Fills data options not given on the command line from DIR/finetune.json (what `finetune`
// used): mean, std, hold-out size and seed.
void recorded_data_options(const std::string& dir, DataFlags& f);

// A subnet with its BatchNorm statistics recalibrated on the calibration split (when it has
// BatchNorm).
std::shared_ptr<const ir::Graph> calibrated_subnet(const supernet::Supernet& s,
                                                   const supernet::SubnetConfig& c,
                                                   const train::TrainData& d, int workers);

// `finetune`: BatchNorm re-inserted if needed, the sandwich rule for options.epochs, then
// DIR/supernet.onnx rewritten and DIR/finetune.json (data, options, max/min accuracy) written.
// Returns that record (empty on ranks other than 0).
nlohmann::json finetune_dir(const std::string& dir, const DataFlags& flags,
                            const train::TrainOptions& options, train::Collective* collective);

std::string sensitivity_path(const std::string& dir);
// `sensitivity`: measures and writes DIR/sensitivity.json (no data: the agreement proxy).
search::SensitivityTable measure_sensitivity(const supernet::Supernet& s, const std::string& dir,
                                             const DataFlags& flags, size_t probe_images,
                                             const std::string& reference);
class AccuracyProbe;
// `search`: the evolutionary search on DIR's LUT and sensitivity table; the search.json record.
// With a probe and eo.finalists > 1, each budget's finalists are re-ranked by exact evaluation
// on the probe images, and the family made monotone (search::rerank, make_family_monotone).
nlohmann::json run_search(const supernet::Supernet& s, const std::string& dir,
                          const std::string& device, const Budgets& budgets,
                          const search::EvolutionOptions& eo,
                          const AccuracyProbe* rerank = nullptr);

// Accuracy of a subnet for the sensitivity table: top-1 on held-out training images (BatchNorm
// recalibrated), or without data the agreement with the max subnet's top-1 on synthetic inputs.
class AccuracyProbe {
 public:
  AccuracyProbe(const supernet::Supernet& s, const std::string& dir, DataFlags flags,
                size_t probe_images);
  // Exact accuracy with the per-image results (1: right, or agreeing with the max subnet).
  search::ProbeResult measure(const supernet::SubnetConfig& c) const;
  double operator()(const supernet::SubnetConfig& c) const { return measure(c).accuracy; }
  bool has_data() const { return data_.has_value(); }
  size_t images() const;

 private:
  at::Tensor top1_synthetic(std::shared_ptr<const ir::Graph> g) const;
  const supernet::Supernet& s_;
  std::optional<train::TrainData> data_;
  std::vector<size_t> probe_;
  int workers_ = 2;
  at::Tensor synthetic_, reference_;
};

}  // namespace autotailor::cli
