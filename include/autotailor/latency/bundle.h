// On-device profiling: the space's unique step configurations as tiny standalone ONNX models
// (a bundle), to be timed on the device with any runtime's benchmark tool, and the CSV of its
// measurements turned back into a LUT. See docs/latency.md ("On-device profiling").
#pragma once

#include <map>
#include <string>

#include "autotailor/latency/latency.h"

namespace autotailor::latency {

// A configuration's id in bundles and CSV files: FNV-1a 64 of its key, 16 hex digits. Stable
// across machines, so a CSV maps back to keys without the bundle.
std::string config_id(const std::string& key);

// The id of the bundle's reference model (one Relu on 8 floats): its time is a runtime's cost
// of one inference call, subtracted from every step on import and added once per prediction.
inline const char* kCallOverheadId = "call-overhead";

struct BundleInfo {
  size_t configs = 0;  // in this shard
  size_t total = 0;    // in the space
  size_t pairs = 0;    // two-step models for fusion-rule detection, in this shard
  size_t whole = 0;    // whole calibration subnets, in this shard
};

// The bundle id of a whole calibration subnet ("max" -> "whole-max", "random:1001" ->
// "whole-random-1001").
std::string whole_id(const std::string& subnet_name);

// Writes OUT/manifest.json and OUT/models/ID.onnx for shard `shard` of `shards` (configs whose
// discovery index is shard modulo shards, then the sampled edges as two-step models the same
// way), plus the call-overhead model in every shard. Each file is written atomically; the
// manifest last. A pair's id is config_id of its edge key; its manifest entry names the ids of
// its two steps under "pair". With `whole`, shard 0 also holds the calibration subnets
// (calibration_subnets) exported whole, their entries naming the subnet under "whole".
BundleInfo write_bundle(const SpaceConfigs& cs, const std::string& device, const std::string& out,
                        int shard, int shards, const supernet::Supernet* whole = nullptr);

// Reads a results CSV: a header naming at least `id` and `median_ms` (also `p10_ms`, `p90_ms`,
// `runs` when present, any order; other columns ignored), then one row per model; `#` starts a
// comment line. Errors name the file and line.
std::map<std::string, LatencyEntry> read_results_csv(const std::string& path);

// "i/n" -> {i, n} with 0 <= i < n; Error naming the option otherwise.
std::pair<int, int> parse_shard(const std::string& text);

}  // namespace autotailor::latency
