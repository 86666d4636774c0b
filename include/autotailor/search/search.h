// Accuracy predictor and evolutionary search. Predictors and the search talk through plain
// data (SubnetCode in, numbers out), as in Once-for-All's ofa/nas: any predictor pair can
// drive the search.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "autotailor/supernet/supernet.h"

namespace autotailor::search {

// The learning-free accuracy predictor ("modification sensitivity"): a reference subnet's
// accuracy on the probe images, and for every elastic position and every other value the
// accuracy with only that modification. predicted = base + sum of the changes of a subnet's
// modifications. The reference is the max subnet (AutoTailor's choice) or "mid": the middle
// choice of every width, kernel and the resolution with every block kept, which sits where
// random and searched subnets live, so the changes compose with less interaction.
// A few whole "anchor" subnets (max, mid, min and seeded random ones) are measured exactly on
// the same images; the model maps its raw score onto their accuracy (docs/search.md).
struct SensitivityTable {
  struct Setting {
    supernet::Position::Kind kind;
    std::string name;
    int64_t value = 0;
  };
  struct Entry {
    supernet::Position::Kind kind;
    std::string name;
    int64_t value = 0;
    double accuracy = 0, delta = 0;
    // Paired with the reference on the same images: images only the reference got right (lost)
    // and only this probe got right (gained). -1 where not recorded (tables of older versions).
    int64_t lost = -1, gained = -1;
  };
  struct Anchor {
    std::string label;              // "max", "mid", "min", "random:SEED"
    std::vector<Setting> settings;  // one per position; a position not listed is at its max
    double accuracy = 0;
  };
  // "top1": accuracy on held-out labelled images; "agreement": without data, the share of
  // synthetic inputs on which the subnet's top-1 class equals the max subnet's (a proxy).
  std::string metric = "top1";
  std::string reference = "max";  // "max" or "mid"
  double base_accuracy = 0;
  size_t probe_images = 0;
  double seconds = 0;
  std::vector<Entry> entries;
  std::vector<Anchor> anchors;

  static SensitivityTable load(const std::string& path);
  void save(const std::string& path) const;  // atomic
};

// One exact evaluation of a subnet on the probe images: its accuracy and, where the caller
// has it, the per-image result (1: right), which pairs each probe with the reference.
struct ProbeResult {
  double accuracy = 0;
  std::vector<uint8_t> correct;
};
using SubnetProbe = std::function<ProbeResult(const supernet::SubnetConfig&)>;

// Seeded random anchors measured beside max, mid and min: random:2001..2000+N, clear of
// validate-accuracy's random:1..N.
inline constexpr int kAnchorRandom = 8;
inline constexpr uint64_t kAnchorSeed = 2000;

// Measures the table: `probe` evaluates one subnet (the caller recalibrates BatchNorm and
// evaluates on the probe split). `progress(done, total)` after each probe and anchor.
SensitivityTable measure_sensitivity(const supernet::SearchSpace& s, const SubnetProbe& probe,
                                     const std::function<void(size_t, size_t)>& progress = {},
                                     const std::string& reference = "max");
// The same with an accuracy-only probe (no pairing: every change counts).
SensitivityTable measure_sensitivity(
    const supernet::SearchSpace& s,
    const std::function<double(const supernet::SubnetConfig&)>& accuracy,
    const std::function<void(size_t, size_t)>& progress = {}, const std::string& reference = "max");

// What `sensitivity` and `compile` probe from unless told otherwise.
inline constexpr const char* kDefaultReference = "mid";

// The reference subnet's choice index per position ("max" or "mid", see SensitivityTable).
supernet::SubnetCode reference_code(const std::vector<supernet::Position>& positions,
                                    const std::string& reference);

// The least-squares non-decreasing fit of `y` (pool adjacent violators, equal weights).
std::vector<double> isotonic_fit(const std::vector<double>& y);

// How the single-modification measurements combine into a subnet's prediction.
struct AccuracyOptions {
  // Additive: base + sum of deltas. Multiplicative: base x product of (accuracy / base), the
  // retention of each modification; large drops then compound instead of summing past zero.
  enum class Composition { Additive, Multiplicative };
  Composition composition = Composition::Multiplicative;
  // A width group or kernel that lives inside one skippable block counts only while the
  // stage's depth keeps that block: a skipped block's internal modifications cost nothing.
  bool mask_skipped_blocks = true;
  // Each position's values projected onto a non-decreasing sequence over its choices, and each
  // depth's value capped so that adding a block with its narrowest insides never lowers the
  // score: a subnet that contains another is never predicted less accurate.
  bool monotone = true;
  // A change whose paired images (lost against gained, McNemar's z) do not show it to differ
  // from zero at this z counts as zero. 0 (the default) keeps every change: on resnet_fm most
  // single width changes are within noise on their own yet cost 5 points together, and
  // zeroing them let the search pick the narrowest subnet (docs/search.md).
  double significance_z = 0;
  // The raw score mapped onto the anchors' measured accuracy (isotonic in the raw score,
  // piecewise linear between anchors) and capped at the max subnet's measured accuracy.
  bool calibrate = true;

  // Every field as text, for the stage hashes of what these options change.
  std::string fingerprint() const;
};

// The table compiled against a space's positions: predict() is one look-up per position.
// Without `space`, nothing is masked (block membership is unknown).
class AccuracyModel {
 public:
  AccuracyModel(const SensitivityTable& t, const std::vector<supernet::Position>& positions,
                const supernet::SearchSpace* space = nullptr, AccuracyOptions options = {});
  double predict(const supernet::SubnetCode& code) const;
  // The composed score before calibration.
  double raw(const supernet::SubnetCode& code) const;
  // (raw score, fitted accuracy) of the anchors, by raw score; empty when not calibrated.
  const std::vector<std::pair<double, double>>& calibration() const { return calibration_; }

 private:
  void mask_blocks(const supernet::SearchSpace& space, const std::vector<supernet::Position>& pos);
  void make_depth_monotone();
  void fit_calibration(const SensitivityTable& t, const std::vector<supernet::Position>& pos);

  double base_ = 0;
  AccuracyOptions options_;
  std::vector<std::vector<double>> delta_;  // [position][choice]: accuracy change
  std::vector<std::vector<double>> ratio_;  // [position][choice]: accuracy / base
  // For positions inside a skippable block: the stage's depth position and the block's rank
  // in its stage (the position counts while depth > rank); -1 otherwise.
  std::vector<int> depth_position_;
  std::vector<int64_t> block_rank_;
  std::vector<std::vector<int64_t>> depth_choices_;  // [position] of depth positions
  std::vector<std::pair<double, double>> calibration_;
  double cap_ = 1;
};

struct EvolutionOptions {
  // Once-for-All's defaults (ofa/nas/search_algorithm/evolution.py).
  int population = 100;
  int generations = 500;
  double parent_ratio = 0.25;
  double mutation_ratio = 0.5;
  double mutate_prob = 0.1;
  uint64_t seed = 0;
  // "evolution", or "random": the baseline of NAS papers, population x (generations + 1)
  // uniform random subnets per budget, those over the budget discarded (not repaired), the
  // best by predicted accuracy kept.
  std::string strategy = "evolution";
  // The distinct feasible candidates kept per budget, best predicted first, for re-ranking.
  int finalists = 1;
};

// A subnet with its cost in the budget's unit (ms, MACs or parameters) and its accuracy as
// predicted and, once re-ranked, as measured exactly on the calibration images.
struct Candidate {
  supernet::SubnetCode code;
  double cost = 0, accuracy = 0;
  std::optional<double> measured;
};

struct BudgetResult {
  double budget = 0;
  Candidate best;
  int64_t feasible = 0;  // random search: samples within the budget (0: `best` is the min subnet)
  std::vector<Candidate> finalists;  // distinct, within the budget, best predicted first
  bool rerank_changed = false;       // re-ranking picked another finalist than the predictor
  bool raised = false;               // a smaller budget's pick was better and replaced this one
};

struct SearchReport {
  std::vector<BudgetResult> results;  // one per budget, in the order given
  std::vector<Candidate> pareto;      // non-dominated feasible candidates seen, by cost
  int64_t evaluations = 0;
  double seconds = 0;
};

using Predictor = std::function<double(const supernet::SubnetCode&)>;

// A limit every candidate must meet besides its budget (`--max-macs`, `--max-params` on a
// latency budget). `name` is the option, for the error when even the min subnet exceeds it.
struct Constraint {
  std::string name;
  Predictor value;
  double limit = 0;
};

// Evolutionary (or random, see EvolutionOptions::strategy) search per budget: maximise predicted
// accuracy subject to predicted cost <= budget and every limit. Candidates over are repaired by
// shrinking random positions one choice at a time, so the population stays feasible. Deterministic
// for a seed. Throws Error naming a budget or limit below the min subnet's.
SearchReport evolve(const std::vector<supernet::Position>& positions, const Predictor& cost,
                    const Predictor& accuracy, const std::vector<double>& budgets,
                    const EvolutionOptions& options = {},
                    const std::vector<Constraint>& limits = {});

// Exact re-ranking: each budget's finalists measured (`measure`, each distinct subnet once)
// and the best measured one made the pick (ties: the better prediction).
void rerank(SearchReport& r, const Predictor& measure);

// An honest family: budgets in increasing order never lose accuracy (measured where re-ranked,
// else predicted): a pick worse than a smaller budget's is replaced by that one, which fits.
void make_family_monotone(SearchReport& r);

// The non-dominated subset (lower cost, higher accuracy), sorted by cost.
std::vector<Candidate> pareto_front(std::vector<Candidate> all);

}  // namespace autotailor::search
