#include "autotailor/exec/timing.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "../ops/op_registry.h"

namespace autotailor::exec {

namespace {
double percentile(const std::vector<double>& sorted, double p) {
  double pos = p * static_cast<double>(sorted.size() - 1);
  size_t lo = static_cast<size_t>(pos);
  size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}
}  // namespace

Timing summarize(std::vector<double> ms) {
  Timing t;
  if (ms.empty()) return t;
  std::sort(ms.begin(), ms.end());
  t.runs = static_cast<int>(ms.size());
  t.mean_ms = std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(ms.size());
  double var = 0;
  for (double v : ms) var += (v - t.mean_ms) * (v - t.mean_ms);
  t.stdev_ms = ms.size() > 1 ? std::sqrt(var / static_cast<double>(ms.size() - 1)) : 0.0;
  t.median_ms = percentile(ms, 0.5);
  t.p10_ms = percentile(ms, 0.1);
  t.p90_ms = percentile(ms, 0.9);
  t.min_ms = ms.front();
  t.max_ms = ms.back();
  return t;
}

Timing time_runs(Executor& ex, const std::vector<at::Tensor>& inputs, int warmup, int min_runs,
                 double min_total_ms, int max_runs) {
  c10::InferenceMode guard;
  for (int i = 0; i < warmup; ++i) ex.run(inputs);
  std::vector<double> ms;
  double total = 0;
  while (static_cast<int>(ms.size()) < min_runs ||
         (total < min_total_ms && (max_runs <= 0 || static_cast<int>(ms.size()) < max_runs))) {
    auto t0 = std::chrono::steady_clock::now();
    ex.run(inputs);
    auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    total += ms.back();
  }
  return summarize(std::move(ms));
}

std::vector<std::vector<double>> time_steps(Executor& ex, const std::vector<at::Tensor>& inputs,
                                            int warmup, int min_runs, double min_total_ms,
                                            int max_runs, std::vector<double>* whole) {
  c10::InferenceMode guard;
  for (int i = 0; i < warmup; ++i) ex.run(inputs);
  std::vector<std::vector<double>> per_step(ex.step_count());
  std::vector<double> step_ms;
  ex.set_step_timer(&step_ms);
  double total = 0;
  int runs = 0;
  while (runs < min_runs || (total < min_total_ms && (max_runs <= 0 || runs < max_runs))) {
    auto t0 = std::chrono::steady_clock::now();
    ex.run(inputs);
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    for (size_t k = 0; k < step_ms.size(); ++k) per_step[k].push_back(step_ms[k]);
    if (whole) whole->push_back(ms);
    total += ms;
    ++runs;
  }
  ex.set_step_timer(nullptr);
  return per_step;
}

std::vector<at::Tensor> random_inputs(const ir::Graph& g, int64_t batch, uint64_t seed,
                                      bool channels_last) {
  at::manual_seed(seed);
  std::vector<at::Tensor> xs;
  for (int id : g.inputs) {
    const ir::Tensor& t = g.tensor(id);
    std::vector<int64_t> shape = t.shape;
    if (!shape.empty()) shape[0] = batch;
    auto type = ops::to_scalar_type(t.dtype);
    auto opt = at::TensorOptions().dtype(type);
    at::Tensor x = at::isFloatingType(type) ? at::randn(shape, opt) : at::zeros(shape, opt);
    if (channels_last && x.dim() == 4 && at::isFloatingType(type))
      x = x.contiguous(at::MemoryFormat::ChannelsLast);
    xs.push_back(x);
  }
  return xs;
}

}  // namespace autotailor::exec
