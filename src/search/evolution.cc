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
  const Predictor& cost;
  const Predictor& accuracy;
  const std::vector<Constraint>& limits;
  Rng rng;
  int64_t evaluations = 0;
  std::vector<Candidate> seen;

  Candidate eval(const supernet::SubnetCode& code) {
    ++evaluations;
    Candidate c{code, cost(code), 0, std::nullopt};
    c.accuracy = accuracy(code);
    return c;
  }

  bool fits(const Candidate& c, double budget) const {
    if (c.cost > budget) return false;
    for (const Constraint& k : limits)
      if (k.value(c.code) > k.limit) return false;
    return true;
  }

  // Shrinks random positions one choice at a time until the cost and every limit fit.
  Candidate repair(supernet::SubnetCode code, double budget) {
    Candidate c = eval(code);
    while (!fits(c, budget)) {
      std::vector<size_t> shrinkable;
      for (size_t i = 0; i < code.size(); ++i)
        if (code[i] > 0) shrinkable.push_back(i);
      if (shrinkable.empty()) break;
      --code[shrinkable[rng.below(shrinkable.size())]];
      c = eval(code);
    }
    if (fits(c, budget)) seen.push_back(c);
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

// Where the predictor cannot tell two candidates apart, the one that uses more of the budget
// wins: under a monotone predictor it is never predicted worse, and single modifications
// that are each within the probe noise still cost accuracy together (docs/search.md).
bool better(const Candidate& a, const Candidate& b) {
  if (a.accuracy != b.accuracy) return a.accuracy > b.accuracy;
  if (a.cost != b.cost) return a.cost > b.cost;
  return code_less(a.code, b.code);  // a total order: the result does not depend on sort stability
}

}  // namespace

std::vector<Candidate> pareto_front(std::vector<Candidate> all) {
  std::sort(all.begin(), all.end(), [](const Candidate& a, const Candidate& b) {
    if (a.cost != b.cost) return a.cost < b.cost;
    if (a.accuracy != b.accuracy) return a.accuracy > b.accuracy;
    return code_less(a.code, b.code);
  });
  std::vector<Candidate> front;
  for (Candidate& c : all)
    if (front.empty() || c.accuracy > front.back().accuracy) front.push_back(std::move(c));
  return front;
}

// The k best distinct candidates of `cands` (all feasible), best first.
std::vector<Candidate> best_distinct(std::vector<Candidate> cands, int k) {
  std::sort(cands.begin(), cands.end(), better);
  std::vector<Candidate> out;
  for (Candidate& c : cands) {
    if (static_cast<int>(out.size()) >= k) break;
    if (std::none_of(out.begin(), out.end(),
                     [&](const Candidate& o) { return code_equal(o.code, c.code); }))
      out.push_back(std::move(c));
  }
  return out;
}

// The score a family compares: measured where re-ranked, else predicted.
double family_score(const Candidate& c) {
  return c.measured ? *c.measured : c.accuracy;
}

SearchReport evolve(const std::vector<supernet::Position>& pos, const Predictor& cost,
                    const Predictor& accuracy, const std::vector<double>& budgets,
                    const EvolutionOptions& o, const std::vector<Constraint>& limits) {
  if (o.population < 2) usage_fail("--population must be at least 2");
  auto start = std::chrono::steady_clock::now();
  Search s{pos, cost, accuracy, limits, Rng(o.seed), 0, {}};
  SearchReport report;
  supernet::SubnetCode min_code(pos.size(), 0);
  double min_cost = cost(min_code);
  for (const Constraint& k : limits)
    if (!(k.limit >= k.value(min_code)))
      fail("{} {:.6g}: below the smallest subnet's {:.6g}", k.name, k.limit, k.value(min_code));
  size_t parents_n = std::max<size_t>(1, static_cast<size_t>(o.parent_ratio * o.population));
  size_t mutants_n = static_cast<size_t>(o.mutation_ratio * o.population);
  if (o.strategy != "evolution" && o.strategy != "random")
    usage_fail("--strategy must be 'evolution' or 'random' (got '{}')", o.strategy);
  for (double budget : budgets) {
    if (!(budget > 0) || !std::isfinite(budget))
      fail("budgets must be positive and finite (got {})", budget);
    if (budget < min_cost)
      fail("budget {:.6g}: below the smallest subnet's predicted {:.6g}", budget, min_cost);
    const size_t seen_before = s.seen.size();
    if (o.strategy == "random") {
      BudgetResult br{budget, s.eval(min_code), 0, {}, false, false};
      int64_t samples = static_cast<int64_t>(o.population) * (o.generations + 1);
      for (int64_t i = 0; i < samples; ++i) {
        Candidate c = s.eval(s.random_code());
        if (!s.fits(c, budget)) continue;
        s.seen.push_back(c);
        if (br.feasible++ == 0 || better(c, br.best)) br.best = c;
      }
      br.finalists = best_distinct(
          std::vector<Candidate>(s.seen.begin() + static_cast<std::ptrdiff_t>(seen_before),
                                 s.seen.end()),
          std::max(1, o.finalists));
      if (br.finalists.empty()) br.finalists.push_back(br.best);
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
    BudgetResult br{budget, population.front(), o.population, {}, false, false};
    // Every feasible candidate this budget's search saw (the final population came through
    // repair, so it is among them).
    br.finalists =
        best_distinct(std::vector<Candidate>(
                          s.seen.begin() + static_cast<std::ptrdiff_t>(seen_before), s.seen.end()),
                      std::max(1, o.finalists));
    report.results.push_back(std::move(br));
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

void rerank(SearchReport& r, const Predictor& measure) {
  std::vector<std::pair<supernet::SubnetCode, double>> cache;
  auto measured = [&](const supernet::SubnetCode& code) {
    for (const auto& [c, m] : cache)
      if (code_equal(c, code)) return m;
    cache.emplace_back(code, measure(code));
    return cache.back().second;
  };
  for (BudgetResult& b : r.results) {
    if (b.finalists.empty()) b.finalists.push_back(b.best);
    for (Candidate& c : b.finalists) c.measured = measured(c.code);
    auto best = std::max_element(b.finalists.begin(), b.finalists.end(),
                                 [](const Candidate& x, const Candidate& y) {
                                   if (*x.measured != *y.measured) return *x.measured < *y.measured;
                                   return better(y, x);
                                 });
    b.rerank_changed = !code_equal(best->code, b.best.code);
    b.best = *best;
  }
}

void make_family_monotone(SearchReport& r) {
  std::vector<size_t> order(r.results.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return r.results[a].budget < r.results[b].budget; });
  const Candidate* best_below = nullptr;
  for (size_t i : order) {
    BudgetResult& b = r.results[i];
    if (best_below && family_score(*best_below) > family_score(b.best)) {
      b.best = *best_below;
      b.raised = true;
    }
    best_below = &b.best;
  }
}

}  // namespace autotailor::search
