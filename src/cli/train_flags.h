// Options shared by `train`, `finetune` and `evaluate`: the data and how it is prepared, and
// the training hyper-parameters.
#pragma once

#include <CLI/CLI.hpp>

#include "autotailor/train/trainer.h"

namespace autotailor::cli {

struct DataFlags {
  std::string spec;
  std::vector<float> mean, std;
  size_t holdout = 0;  // 0: min(5000, a tenth of the training set)
  uint64_t split_seed = 0;
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

}  // namespace autotailor::cli
