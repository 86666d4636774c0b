// Accuracy predictor and evolutionary search. Predictors and the search talk through plain
// data (SubnetCode in, numbers out), as in Once-for-All's ofa/nas: any predictor pair can
// drive the search.
#pragma once

#include <cstdint>
#include <functional>
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
struct SensitivityTable {
  struct Entry {
    supernet::Position::Kind kind;
    std::string name;
    int64_t value = 0;
    double accuracy = 0, delta = 0;
  };
  // "top1": accuracy on held-out labelled images; "agreement": without data, the share of
  // synthetic inputs on which the subnet's top-1 class equals the max subnet's (a proxy).
  std::string metric = "top1";
  std::string reference = "max";  // "max" or "mid"
  double base_accuracy = 0;
  size_t probe_images = 0;
  double seconds = 0;
  std::vector<Entry> entries;

  static SensitivityTable load(const std::string& path);
  void save(const std::string& path) const;  // atomic
};

// Measures the table: `accuracy` evaluates one subnet (the caller recalibrates BatchNorm and
// evaluates on the probe split). `progress(done, total)` after each probe.
SensitivityTable measure_sensitivity(
    const supernet::SearchSpace& s,
    const std::function<double(const supernet::SubnetConfig&)>& accuracy,
    const std::function<void(size_t, size_t)>& progress = {}, const std::string& reference = "max");

// What `sensitivity` and `compile` probe from unless told otherwise.
inline constexpr const char* kDefaultReference = "mid";

// The reference subnet's choice index per position ("max" or "mid", see SensitivityTable).
supernet::SubnetCode reference_code(const std::vector<supernet::Position>& positions,
                                    const std::string& reference);

// How the single-modification measurements combine into a subnet's prediction.
struct AccuracyOptions {
  // Additive: base + sum of deltas. Multiplicative: base x product of (accuracy / base), the
  // retention of each modification; large drops then compound instead of summing past zero.
  enum class Composition { Additive, Multiplicative };
  Composition composition = Composition::Multiplicative;
  // A width group or kernel that lives inside one skippable block counts only while the
  // stage's depth keeps that block: a skipped block's internal modifications cost nothing.
  bool mask_skipped_blocks = true;
};

// The table compiled against a space's positions: predict() is one look-up per position.
// Without `space`, nothing is masked (block membership is unknown).
class AccuracyModel {
 public:
  AccuracyModel(const SensitivityTable& t, const std::vector<supernet::Position>& positions,
                const supernet::SearchSpace* space = nullptr, AccuracyOptions options = {});
  double predict(const supernet::SubnetCode& code) const;

 private:
  double base_ = 0;
  AccuracyOptions options_;
  std::vector<std::vector<double>> delta_;  // [position][choice]: accuracy change
  std::vector<std::vector<double>> ratio_;  // [position][choice]: accuracy / base
  // For positions inside a skippable block: the stage's depth position and the block's rank
  // in its stage (the position counts while depth > rank); -1 otherwise.
  std::vector<int> depth_position_;
  std::vector<int64_t> block_rank_;
  std::vector<std::vector<int64_t>> depth_choices_;  // [position] of depth positions
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
};

struct Candidate {
  supernet::SubnetCode code;
  double latency_ms = 0, accuracy = 0;
};

struct BudgetResult {
  double budget_ms = 0;
  Candidate best;
  int64_t feasible = 0;  // random search: samples within the budget (0: `best` is the min subnet)
};

struct SearchReport {
  std::vector<BudgetResult> results;  // one per budget, in the order given
  std::vector<Candidate> pareto;      // non-dominated feasible candidates seen, by latency
  int64_t evaluations = 0;
  double seconds = 0;
};

using Predictor = std::function<double(const supernet::SubnetCode&)>;

// Evolutionary (or random, see EvolutionOptions::strategy) search per budget: maximise predicted
// accuracy subject to predicted latency <= budget. Candidates over the budget are repaired by
// shrinking random positions one choice at a time, so the population stays feasible. Deterministic
// for a seed. Throws Error naming a budget below the min subnet's predicted latency.
SearchReport evolve(const std::vector<supernet::Position>& positions, const Predictor& latency_ms,
                    const Predictor& accuracy, const std::vector<double>& budgets_ms,
                    const EvolutionOptions& options = {});

// The non-dominated subset (lower latency, higher accuracy), sorted by latency.
std::vector<Candidate> pareto_front(std::vector<Candidate> all);

}  // namespace autotailor::search
