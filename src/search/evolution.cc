// Evolutionary search in the manner of Once-for-All (ofa/nas/search_algorithm/evolution.py):
// keep the best quarter of the population, fill half with mutants of them and the rest with
// crossovers. Differences: infeasible children are repaired rather than resampled, so tight
// budgets converge, and every feasible candidate seen feeds the Pareto front.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <set>

#include "autotailor/common/error.h"
#include "autotailor/search/search.h"

namespace autotailor::search {

namespace {

// mt19937_64's sequence is fixed by the standard; the reductions are done by hand so that a
// seed gives the same search with every standard library.
class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  size_t below(size_t n) { return static_cast<size_t>(g_() % n); }
  double unit() { return static_cast<double>(g_() >> 11) * 0x1.0p-53; }

 private:
  std::mt19937_64 g_;
};

struct Search {
  const std::vector<supernet::Position>& pos;
  const Predictor& latency;
  const Predictor& accuracy;
  Rng rng;
  int64_t evaluations = 0;
  std::vector<Candidate> seen;

  Candidate eval(const supernet::SubnetCode& code) {
    ++evaluations;
    Candidate c{code, latency(code), 0};
    c.accuracy = accuracy(code);
    return c;
  }

  // Shrinks random positions one choice at a time until the latency fits.
  Candidate repair(supernet::SubnetCode code, double budget) {
    Candidate c = eval(code);
    while (c.latency_ms > budget) {
      std::vector<size_t> shrinkable;
      for (size_t i = 0; i < code.size(); ++i)
        if (code[i] > 0) shrinkable.push_back(i);
      if (shrinkable.empty()) break;
      --code[shrinkable[rng.below(shrinkable.size())]];
      c = eval(code);
    }
    if (c.latency_ms <= budget) seen.push_back(c);
    return c;
  }

  supernet::SubnetCode random_code() {
    supernet::SubnetCode code(pos.size());
    for (size_t i = 0; i < pos.size(); ++i)
      code[i] = static_cast<uint8_t>(rng.below(pos[i].choices.size()));
    return code;
  }

  supernet::SubnetCode mutate(supernet::SubnetCode code, double p) {
    for (size_t i = 0; i < pos.size(); ++i)
      if (rng.unit() < p) code[i] = static_cast<uint8_t>(rng.below(pos[i].choices.size()));
    return code;
  }

  supernet::SubnetCode crossover(const supernet::SubnetCode& a, const supernet::SubnetCode& b) {
    supernet::SubnetCode code(a.size());
    for (size_t i = 0; i < a.size(); ++i) code[i] = rng.below(2) ? a[i] : b[i];
    return code;
  }
};

// Element by element: GCC 12 warns falsely about the memcmp std::vector<uint8_t>'s operators use.
bool code_less(const supernet::SubnetCode& a, const supernet::SubnetCode& b) {
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    if (a[i] != b[i]) return a[i] < b[i];
  return a.size() < b.size();
}

bool code_equal(const supernet::SubnetCode& a, const supernet::SubnetCode& b) {
  return !code_less(a, b) && !code_less(b, a);
}

bool better(const Candidate& a, const Candidate& b) {
  if (a.accuracy != b.accuracy) return a.accuracy > b.accuracy;
  if (a.latency_ms != b.latency_ms) return a.latency_ms < b.latency_ms;
  return code_less(a.code, b.code);  // a total order: the result does not depend on sort stability
}

}  // namespace

std::vector<Candidate> pareto_front(std::vector<Candidate> all) {
  std::sort(all.begin(), all.end(), [](const Candidate& a, const Candidate& b) {
    if (a.latency_ms != b.latency_ms) return a.latency_ms < b.latency_ms;
    if (a.accuracy != b.accuracy) return a.accuracy > b.accuracy;
    return code_less(a.code, b.code);
  });
  std::vector<Candidate> front;
  for (Candidate& c : all)
    if (front.empty() || c.accuracy > front.back().accuracy) front.push_back(std::move(c));
  return front;
}

SearchReport evolve(const std::vector<supernet::Position>& pos, const Predictor& latency_ms,
                    const Predictor& accuracy, const std::vector<double>& budgets,
                    const EvolutionOptions& o) {
  if (o.population < 2) fail("--population must be at least 2");
  auto start = std::chrono::steady_clock::now();
  Search s{pos, latency_ms, accuracy, Rng(o.seed), 0, {}};
  SearchReport report;
  supernet::SubnetCode min_code(pos.size(), 0);
  double min_latency = latency_ms(min_code);
  size_t parents_n = std::max<size_t>(1, static_cast<size_t>(o.parent_ratio * o.population));
  size_t mutants_n = static_cast<size_t>(o.mutation_ratio * o.population);
  if (o.strategy != "evolution" && o.strategy != "random")
    fail("--strategy must be 'evolution' or 'random' (got '{}')", o.strategy);
  for (double budget : budgets) {
    if (!(budget > 0)) fail("--latency-ms: budgets must be positive (got {})", budget);
    if (budget < min_latency)
      fail("--latency-ms {:.3f}: below the smallest subnet's predicted {:.3f} ms", budget,
           min_latency);
    if (o.strategy == "random") {
      BudgetResult br{budget, s.eval(min_code), 0};
      int64_t samples = static_cast<int64_t>(o.population) * (o.generations + 1);
      for (int64_t i = 0; i < samples; ++i) {
        Candidate c = s.eval(s.random_code());
        if (c.latency_ms > budget) continue;
        s.seen.push_back(c);
        if (br.feasible++ == 0 || better(c, br.best)) br.best = c;
      }
      report.results.push_back(br);
      continue;
    }
    std::vector<Candidate> population;
    for (int i = 0; i < o.population; ++i) population.push_back(s.repair(s.random_code(), budget));
    for (int gen = 0; gen < o.generations; ++gen) {
      std::sort(population.begin(), population.end(), better);
      population.resize(std::min(parents_n, population.size()));
      std::vector<Candidate> next = population;
      for (size_t i = 0; i < mutants_n; ++i)
        next.push_back(s.repair(
            s.mutate(population[s.rng.below(population.size())].code, o.mutate_prob), budget));
      while (next.size() < static_cast<size_t>(o.population)) {
        const auto& a = population[s.rng.below(population.size())].code;
        const auto& b = population[s.rng.below(population.size())].code;
        next.push_back(s.repair(s.crossover(a, b), budget));
      }
      population = std::move(next);
    }
    std::sort(population.begin(), population.end(), better);
    report.results.push_back({budget, population.front(), o.population});
  }
  // Unique codes only, then the front.
  std::sort(s.seen.begin(), s.seen.end(),
            [](const Candidate& a, const Candidate& b) { return code_less(a.code, b.code); });
  s.seen.erase(std::unique(s.seen.begin(), s.seen.end(),
                           [](const Candidate& a, const Candidate& b) {
                             return code_equal(a.code, b.code);
                           }),
               s.seen.end());
  report.pareto = pareto_front(std::move(s.seen));
  report.evaluations = s.evaluations;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace autotailor::search
