#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <thread>

#include "../ops/op_registry.h"
#include "autotailor/common/error.h"
#include "autotailor/exec/executor.h"
#include "autotailor/exec/timing.h"
#include "autotailor/import/onnx_import.h"
#include "commands.h"

namespace autotailor::cli {

namespace {
struct BenchArgs {
  std::string model;
  int64_t batch = 1;
  int threads = 0;
  int runs = 20, warmup = 3;
  bool json = false;
};

}  // namespace

void add_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "Measure a model's inference latency on this machine");
  cmd->add_option("model", a->model, "ONNX model file")->required();
  cmd->add_option("--batch", a->batch, "Batch size")->check(CLI::Range(1, 4096));
  cmd->add_option("--threads", a->threads, "Intra-op threads (default: all cores)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--runs", a->runs, "Timed runs")->check(CLI::Range(1, 100000));
  cmd->add_option("--warmup", a->warmup, "Untimed runs first")->check(CLI::Range(0, 100000));
  cmd->add_flag("--json", a->json, "Print JSON (median_ms, ...) to stdout");
  cmd->callback([a] {
    int threads = a->threads ? a->threads : static_cast<int>(std::thread::hardware_concurrency());
    at::set_num_threads(threads);
    std::shared_ptr<const ir::Graph> g = import_onnx(a->model);
    exec::Executor ex(g);
    std::vector<at::Tensor> inputs = exec::random_inputs(*g, a->batch);
    exec::Timing t = exec::time_runs(ex, inputs, a->warmup, a->runs);
    double median = t.median_ms, mean = t.mean_ms, stdev = t.stdev_ms, p10 = t.p10_ms,
           p90 = t.p90_ms, lo = t.min_ms, hi = t.max_ms;
    if (a->json) {
      nlohmann::json j = {{"model", a->model}, {"batch", a->batch},   {"threads", threads},
                          {"runs", a->runs},   {"warmup", a->warmup}, {"median_ms", median},
                          {"mean_ms", mean},   {"stdev_ms", stdev},   {"p10_ms", p10},
                          {"p90_ms", p90},     {"min_ms", lo},        {"max_ms", hi}};
      std::cout << j.dump() << "\n";
    } else {
      std::cout << fmt::format(
          "{}: median {:.3f} ms (p10 {:.3f}, p90 {:.3f}, min {:.3f}, max {:.3f}) over {} runs, "
          "batch {}, {} thread(s)\n",
          a->model, median, p10, p90, lo, hi, a->runs, a->batch, threads);
    }
  });
}

}  // namespace autotailor::cli
