// How latency is measured everywhere (bench, profile, validate-latency): warm-up runs, then
// timed runs of the whole executor call; median and spread.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "autotailor/exec/executor.h"

namespace autotailor::exec {

struct Timing {
  double median_ms = 0, mean_ms = 0, stdev_ms = 0, p10_ms = 0, p90_ms = 0, min_ms = 0, max_ms = 0;
  int runs = 0;
};

Timing summarize(std::vector<double> ms);

// Runs `warmup` untimed calls, then at least `min_runs` timed ones, continuing until
// `min_total_ms` of timed work (capped at `max_runs`), under inference mode.
Timing time_runs(Executor& ex, const std::vector<at::Tensor>& inputs, int warmup, int min_runs,
                 double min_total_ms = 0, int max_runs = 0);

// Like time_runs, with every step timed in context (Executor::set_step_timer): per step, the
// timings of all timed runs, in plan() order. `whole` gets the runs' total times.
std::vector<std::vector<double>> time_steps(Executor& ex, const std::vector<at::Tensor>& inputs,
                                            int warmup, int min_runs, double min_total_ms,
                                            int max_runs, std::vector<double>* whole = nullptr);

// Seeded random inputs for a graph at its static shapes with the batch set to `batch`.
// `channels_last`: 4-D float inputs laid out as the executor's convolutions leave activations
// (NHWC), for timing one step as it runs inside a network.
std::vector<at::Tensor> random_inputs(const ir::Graph& g, int64_t batch, uint64_t seed = 0,
                                      bool channels_last = false);

}  // namespace autotailor::exec
