// ONNX Runtime through tools/ort_run.js (Node.js and the onnxruntime-node package that
// tools/setup.sh installs): the runtime we did not write, for the `host-ort` device.
#pragma once

#include <string>
#include <vector>

namespace autotailor::cli {

// The runner script: $AUTOTAILOR_ORT_RUNNER, else tools/ort_run.js of the source tree this
// binary was built from. Throws Error saying how to get it when missing.
std::string ort_runner();

// Runs `node RUNNER args...`; returns its stdout. Throws Error with the runner's last stderr
// line when it fails.
std::string run_ort(const std::vector<std::string>& args);

// Median latency of a whole model in ONNX Runtime at batch 1 (`ort_run.js bench`).
double ort_median_ms(const std::string& model, int threads, int runs);

// Whole models timed in ONNX Runtime at batch 1 in `rounds` interleaved rounds (every model in
// turn, `warmup` + `runs` calls each per round): per model, the median of each round.
std::vector<std::vector<double>> ort_round_medians(const std::vector<std::string>& models,
                                                   int threads, int rounds, int runs, int warmup);

}  // namespace autotailor::cli
