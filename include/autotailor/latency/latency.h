// The learning-free latency predictor: a look-up table (LUT) of the unique operator
// configurations that occur in the search space, measured once, summed per subnet. See
// docs/latency.md.
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autotailor/ir/graph.h"
#include "autotailor/supernet/supernet.h"

namespace autotailor::latency {

// One executor step at concrete shapes: an op with the element-wise ops fused into it (what
// actually runs as one kernel), e.g.
// "Conv+Add+Relu|1x64x56x56,c64x64x3x3,c64,1x64x56x56|dilations=1,1;group=1;pads=1,1,1,1;...".
struct OpConfig {
  std::string key;
  std::shared_ptr<const ir::Graph> graph;  // the step alone, to time it
};

// The keys of a graph's steps as the executor plans them, in order.
std::vector<std::string> step_keys(const ir::Graph& g);

// The coarse kind of a step, from its key: its head op, with Conv told apart as
// "DepthwiseConv" (group = input channels > 1) and "GroupConv" (other group > 1). Fusion rules
// are per pair of kinds.
std::string step_kind(const std::string& key);

// A boundary between two steps: a tensor the producer writes and the consumer reads. A sample
// of them is bundled as two-step models, so that what a runtime saves by running the pair as
// part of one graph (fusing across our steps, skipping the layout conversions a standalone model
// pays at its edges) is measured: nn-Meter's fusion-rule test, time a, b and a->b.
struct EdgeConfig {
  std::string key;                 // "<producer key> >slot> <consumer key>"
  std::string producer, consumer;  // step keys
  std::string producer_kind, consumer_kind;
  int64_t bytes = 0;                       // the tensor between them
  std::shared_ptr<const ir::Graph> graph;  // the two steps alone
};

// How many edges per pair of kinds are bundled, spread over the tensor sizes that occur.
inline constexpr size_t kEdgesPerKindPair = 16;

struct SpaceConfigs {
  std::vector<OpConfig> configs;  // unique, in discovery order
  // Sampled boundaries between steps (at most kEdgesPerKindPair per pair of kinds), for
  // fusion-rule detection on runtimes other than our executor.
  std::vector<EdgeConfig> edges;
  size_t unique_edges = 0;  // before sampling
  int subnets_derived = 0;  // covering subnets derived to find them
  // The covering subnets and their step keys in plan order: every configuration occurs in at
  // least one of them, so timing their steps in context covers the space.
  std::vector<supernet::SubnetConfig> covering;
  std::vector<std::vector<std::string>> covering_keys;
  double log10_subnets = 0;  // size of the space, for comparison
};

// Every step configuration that occurs in the space, found without enumerating subnets: each
// step's configuration depends only on a few dimensions (the widths of the groups its tensors
// carry, its kernel, the resolution). Covering assignments make every combination of every
// step's dimensions appear in some derived subnet, at full and at minimum depth.
SpaceConfigs unique_configs(const supernet::Supernet& s);

struct LatencyEntry {
  double median_ms = 0, p10_ms = 0, p90_ms = 0;
  int runs = 0;
  bool estimated = false;
};

// A two-step model timed on the device, net of the runtime's call overhead.
struct PairMeasurement {
  std::string producer, consumer;  // step keys
  int64_t bytes = 0;
  double median_ms = 0;
};

// What a runtime saves at a boundary between steps of two kinds, fitted on the measured pairs:
// saving = T(a) + T(b) - T(a->b) = intercept_ms + ms_per_mb * MB of the tensor between them
// (Theil-Sen fit), never below 0 nor above max_share * (T(a) + T(b)), the largest share a
// measured pair saved. `detected` when the median pair saves at least kFusionMinShare of
// T(a) + T(b); only detected rules change predictions.
struct FusionRule {
  std::string producer, consumer;  // kinds
  int pairs = 0;
  double intercept_ms = 0, ms_per_mb = 0;
  double median_saving_ms = 0, median_share = 0, max_share = 0;
  bool detected = false;
};
inline constexpr double kFusionMinShare = 0.03;

struct LatencyTable {
  std::string device = "host", runtime, dtype = "float32", date, version;
  int threads = 1;
  // How entries were obtained: "context" (steps timed inside whole covering subnets),
  // "isolated" (each step alone), "estimate" (analytic device model), "import" (a CSV of
  // on-device measurements of the bundle's standalone steps).
  std::string method = "context";
  int64_t batch = 1;
  std::map<std::string, LatencyEntry> entries;
  // Per-model calibration, measured: whole subnets run slower than the sum of their steps timed
  // alone (weights and activations are not hot in cache inside a network). latency =
  // overhead_ms + scale * sum(steps), fitted by least squares on a few whole subnets.
  double overhead_ms = 0, scale = 1;
  // The fitted overhead may be negative (whole runs of small subnets measured below the line
  // through the large ones): then a small enough subnet would be predicted at or below zero.
  // No prediction falls below floor_ratio x the calibrated sum of its steps, floor_ratio being
  // the smallest measured / calibrated-sum ratio among the subnets the fit was made on (0: no
  // floor; only set when overhead_ms < 0). See total().
  double floor_ratio = 0;
  // overhead_ms + steps_ms, held at or above floor_ratio x steps_ms (steps_ms: the calibrated
  // sum of a subnet's steps, fusion savings taken off).
  static double total(double overhead_ms, double floor_ratio, double steps_ms) {
    return std::max(overhead_ms + steps_ms, floor_ratio * steps_ms);
  }
  double total(double steps_ms) const { return total(overhead_ms, floor_ratio, steps_ms); }
  // Imported LUTs whose calibration chose "sum+bytes": also per MB of each step's computed
  // inputs (what a standalone model copies in and out that a whole one keeps in place) and of
  // its weights (cold inside a network, hot when a step is timed alone).
  double ms_per_input_mb = 0, ms_per_weight_mb = 0;
  std::string calibration_model;  // "", "sum" (overhead, scale) or "sum+bytes"
  int calibration_subnets = 0;
  double profiling_seconds = 0;  // wall time spent measuring entries, summed over runs
  // Fusion-rule detection (imported LUTs whose bundle held pair models): the pairs measured,
  // by bundle id, and the rules fitted on them.
  std::map<std::string, PairMeasurement> pairs;
  std::vector<FusionRule> rules;
  // Imported LUTs: whole calibration subnets timed on the device (name -> ms, one call each),
  // from which overhead_ms and scale are fitted once all of them are measured.
  std::map<std::string, double> calibration;
  // The device's speed while the table was measured: the max subnet, exported, timed whole
  // (host, context: the median of the blocks timed after every covering subnet; host,
  // isolated: of samples taken at intervals through the profile; imported: the bundle's
  // whole-max row). validate-latency times it again next to its subnets, so that the
  // device drifting between profiling and validation is told apart from the predictor's error.
  // 0 when not measured (estimates, older tables).
  double reference_ms = 0;
  int reference_samples = 0;
  // Entries measured relative to the reference (host, context: every covering subnet's block
  // of timed runs is followed by a block of the reference's; host-ort: every bundle model is
  // divided by the reference block timed after it), stored in ms at reference_ms. The
  // machine's speed drifting during the profile then cancels out of the table.
  bool relative = false;

  // Refits `rules` from `pairs` and the entries of their two steps.
  void fit_fusion_rules();
  // The saving a detected rule predicts at a boundary; 0 without one. Never negative.
  // `pair_ms` is T(a) + T(b) from the entries.
  double boundary_saving(const std::string& producer_kind, const std::string& consumer_kind,
                         int64_t bytes, double pair_ms) const;

  static LatencyTable load(const std::string& path);
  void save(const std::string& path) const;  // atomic
};

std::string lut_path(const std::string& dir, const std::string& device);
// The LUT of `device` in a SuperNet directory; the error says how to make it when missing.
LatencyTable load_lut(const std::string& dir, const std::string& device);

struct Prediction {
  double latency_ms = 0;
  // key, ms: the LUT entry less the fusion savings at the boundaries into the step
  std::vector<std::pair<std::string, double>> steps;
  double fusion_saving_ms = 0;  // summed over boundaries, by the LUT's detected rules
};

// The whole subnets a per-model correction (overhead_ms, scale) is fitted on: the max, the min
// and random:1001..(1000 + kCalibrationRandom) (clear of validate-latency's random:1..N), by
// name. 22 random ones: the imported fit has up to 4 coefficients, chosen by leave-one-out over
// the random ones; with 6 it missed the small subnets of mobilenet_v2 by 12-34% in ONNX Runtime.
inline constexpr int kCalibrationRandom = 22;
std::vector<std::pair<std::string, supernet::SubnetConfig>> calibration_subnets(
    const supernet::SearchSpace& sp);

// What a calibration is fitted on, per subnet: the sum of its steps (LUT entries less fusion
// savings, uncalibrated) and the MB of its steps' computed and constant inputs.
struct SubnetFeatures {
  double steps_ms = 0, input_mb = 0, weight_mb = 0;
};
SubnetFeatures subnet_features(const supernet::Supernet& s, const LatencyTable& lut,
                               const supernet::SubnetConfig& c);

// Least squares of y = x . coef weighted by 1/y^2 (relative error, which is what the targets
// count). Empty when the system is singular.
std::vector<double> fit_relative(const std::vector<std::vector<double>>& x,
                                 const std::vector<double>& y);

// The calibration of an imported LUT, from its whole calibration subnets (all of them
// measured, every configuration in the LUT): measured = overhead + scale * sum of steps
// ("sum"), or with terms per MB of the steps' computed inputs and weights ("sum+bytes") when
// that has the lower leave-one-out error over the calibration subnets. Sets overhead_ms, scale,
// ms_per_input_mb, ms_per_weight_mb, calibration_model and calibration_subnets and returns a
// line saying what it fitted; returns "" and changes nothing when it cannot fit.
std::string fit_calibration(const supernet::Supernet& s, LatencyTable& lut);

// fit_relative of measured = overhead + scale * predicted. The overhead may come out negative;
// floor_ratio is then the smallest measured / (scale x predicted) over the points, so that
// LatencyTable::total() stays positive. Without a usable fit: overhead 0, scale 1, no floor.
struct OverheadScale {
  double overhead_ms = 0, scale = 1, floor_ratio = 0;
};
OverheadScale fit_overhead_scale(const std::vector<double>& predicted,
                                 const std::vector<double>& measured);

// Sum of the subnet's steps from the LUT, less the savings of detected fusion rules at the
// boundaries between steps, calibrated (scale, and per input and weight MB when fitted), plus
// the per-model overhead. Throws Error naming the
// first configuration the LUT lacks.
Prediction predict(const supernet::Supernet& s, const LatencyTable& lut,
                   const supernet::SubnetConfig& c);

// The same prediction compiled for search: each step of the max subnet gets a table over the
// choices of the dimensions it depends on, filled once from covering subnets, and a flag for
// the skippable block it belongs to; predicting is then a few look-ups per step, with no graph
// derived (millions per second instead of hundreds). Holds a pointer to the Supernet's space:
// the Supernet must outlive it. Throws Error naming a configuration the LUT lacks.
//
// The second constructor fills the same tables with each step's MACs or parameters instead:
// exact counts of the derived subnet (what ir::graph_stats() and `inspect` count), as fast.
// Give it the SuperNet as it is exported (BatchNorm folded) to count the exported files.
enum class Count { Macs, Parameters };
class LatencyModel {
 public:
  LatencyModel(const supernet::Supernet& s, const LatencyTable& lut);
  LatencyModel(const supernet::Supernet& s, Count what);
  double predict(const supernet::SubnetConfig& c) const;   // ms, or the count
  double predict(const supernet::SubnetCode& code) const;  // positions(space) order

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

}  // namespace autotailor::latency
