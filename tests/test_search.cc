// The compiled predictors, the evolutionary search and `compile` end to end.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <set>
#include <thread>

#include "autotailor/common/error.h"
#include "autotailor/common/hash.h"
#include "autotailor/import/onnx_import.h"
#include "autotailor/latency/device.h"
#include "autotailor/latency/latency.h"
#include "autotailor/search/search.h"
#include "autotailor/supernet/supernet.h"
#include "test_util.h"

namespace autotailor {
namespace {

namespace fs = std::filesystem;
using test::run_cli;

using test::reference;

// An estimated LUT needs no measurement: the predictors' arithmetic can be checked quickly.
latency::LatencyTable estimated_lut(const supernet::Supernet& s) {
  latency::Device d = latency::find_device("exynos1380");
  latency::LatencyTable lut;
  lut.device = d.name;
  for (const auto& c : latency::unique_configs(s).configs)
    lut.entries[c.key] = latency::estimate(d, *c.graph);
  lut.overhead_ms = 0.05;
  lut.scale = 1.1;
  return lut;
}

TEST(Encoding, RoundTripsEveryPosition) {
  supernet::Supernet s(import_onnx(reference("mobilenet_v2_fm")), {});
  auto pos = supernet::positions(s.space());
  ASSERT_GT(pos.size(), 5u);
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    supernet::SubnetConfig c = supernet::random_subnet(s.space(), seed);
    EXPECT_EQ(supernet::decode(pos, supernet::encode(pos, c)), c);
  }
  EXPECT_EQ(supernet::decode(pos, supernet::encode(pos, supernet::max_subnet(s.space()))),
            supernet::max_subnet(s.space()));
}

TEST(LatencyModel, EqualsTheDerivedGraphPrediction) {
  for (const char* name : {"resnet_fm", "mobilenet_v2_fm"})
    for (bool fusion : {false, true}) {
      supernet::Supernet s(import_onnx(reference(name)), {});
      latency::LatencyTable lut = estimated_lut(s);
      if (fusion) {
        // Savings at every boundary between convolutions (and from a conv into anything), as an
        // imported LUT's detected rules would give.
        for (const char* consumer : {"Conv", "DepthwiseConv", "GlobalAveragePool", "MaxPool"})
          lut.rules.push_back({"Conv", consumer, 8, 0.001, 0.05, 0.01, 0.1, 0.5, true});
        lut.rules.push_back({"DepthwiseConv", "Conv", 8, 0.002, 0.03, 0.01, 0.1, 0.5, true});
      }
      latency::LatencyModel m(s, lut);
      auto pos = supernet::positions(s.space());
      std::vector<supernet::SubnetConfig> cs = {supernet::max_subnet(s.space()),
                                                supernet::min_subnet(s.space()),
                                                supernet::mid_subnet(s.space())};
      for (uint64_t seed = 1; seed <= 15; ++seed)
        cs.push_back(supernet::random_subnet(s.space(), seed));
      for (const auto& c : cs) {
        latency::Prediction p = latency::predict(s, lut, c);
        double want = p.latency_ms;
        EXPECT_NEAR(m.predict(c), want, 1e-9 * want) << name;
        EXPECT_NEAR(m.predict(supernet::encode(pos, c)), want, 1e-9 * want) << name;
        EXPECT_EQ(p.fusion_saving_ms > 0.0, fusion) << name;
      }
    }
}

// A made-up accuracy function of the config, additive over widths and resolution: each probe's
// value is what it returns.
double made_up_accuracy(const supernet::Supernet& s, const supernet::SubnetConfig& c) {
  double a = 0.9;
  for (auto& [g, w] : c.widths) a -= 0.001 * static_cast<double>(s.space().group(g)->size - w);
  if (c.resolution) a -= 0.0005 * static_cast<double>(s.space().resolution - c.resolution);
  return a;
}

TEST(Sensitivity, PredictionReproducesItsProbesComposesAndMasksSkippedBlocks) {
  supernet::Supernet s(import_onnx(reference("resnet_fm")), {});
  auto pos = supernet::positions(s.space());
  auto acc = [&](const supernet::SubnetConfig& c) { return made_up_accuracy(s, c); };
  search::SensitivityTable t = search::measure_sensitivity(s.space(), acc);
  size_t expect = 0;
  for (const auto& p : pos) expect += p.choices.size() - 1;
  EXPECT_EQ(t.entries.size(), expect);
  using Comp = search::AccuracyOptions::Composition;
  search::AccuracyModel m(
      t, pos, &s.space(),
      {.composition = Comp::Additive, .mask_skipped_blocks = false, .calibrate = false});
  EXPECT_DOUBLE_EQ(m.predict(supernet::encode(pos, supernet::max_subnet(s.space()))), 0.9);
  // The made-up function is additive over widths and resolution: the prediction is exact.
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    supernet::SubnetConfig c = supernet::random_subnet(s.space(), seed);
    c.depths.clear();
    EXPECT_NEAR(m.predict(supernet::encode(pos, c)), acc(c), 1e-12);
  }
  // A multiplicative made-up function: the multiplicative composition is exact on it.
  auto mult = [&](const supernet::SubnetConfig& c) {
    double a = 0.9;
    for (auto& [g, w] : c.widths) a *= 1 - 0.01 * static_cast<double>(s.space().group(g)->size - w);
    return a;
  };
  search::SensitivityTable tm = search::measure_sensitivity(s.space(), mult);
  search::AccuracyModel mm(
      tm, pos, &s.space(),
      {.composition = Comp::Multiplicative, .mask_skipped_blocks = false, .calibrate = false});
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    supernet::SubnetConfig c = supernet::random_subnet(s.space(), seed);
    c.depths.clear();
    c.resolution = 0;
    EXPECT_NEAR(mm.predict(supernet::encode(pos, c)), mult(c), 1e-12);
  }
  // Masking: shrinking a group that lives inside a block costs nothing once the stage's depth
  // skips that block.
  const supernet::Stage& st = s.space().stages[0];
  ASSERT_GE(st.blocks.size(), 2u);
  const auto& body = s.space().blocks[static_cast<size_t>(st.blocks[1])].nodes;
  const supernet::WidthGroup* inner = nullptr;
  for (const auto& g : s.space().groups)
    if (g.elastic() && std::all_of(g.members.begin(), g.members.end(), [&](const std::string& n) {
          return std::find(body.begin(), body.end(), n) != body.end();
        }))
      inner = &g;
  ASSERT_NE(inner, nullptr) << "resnet_fm's block-internal groups";
  supernet::SubnetConfig skip = supernet::max_subnet(s.space());
  skip.depths[st.name] = 1;
  supernet::SubnetConfig both = skip;
  both.widths[inner->name] = inner->choices.front();
  search::AccuracyModel masked(
      t, pos, &s.space(),
      {.composition = Comp::Additive, .mask_skipped_blocks = true, .calibrate = false});
  EXPECT_DOUBLE_EQ(masked.predict(supernet::encode(pos, both)),
                   masked.predict(supernet::encode(pos, skip)));
  EXPECT_LT(m.predict(supernet::encode(pos, both)), m.predict(supernet::encode(pos, skip)));
  std::string dir = test::temp_dir("sens");
  t.save(dir + "/s.json");
  search::SensitivityTable back = search::SensitivityTable::load(dir + "/s.json");
  EXPECT_EQ(back.entries.size(), t.entries.size());
  EXPECT_DOUBLE_EQ(
      search::AccuracyModel(
          back, pos, &s.space(),
          {.composition = Comp::Additive, .mask_skipped_blocks = false, .calibrate = false})
          .predict(supernet::SubnetCode(pos.size(), 0)),
      m.predict(supernet::SubnetCode(pos.size(), 0)));
  fs::remove_all(dir);
}

TEST(Sensitivity, MidReferenceProbesEveryOtherValueAndIsExactOnAdditiveAccuracy) {
  supernet::Supernet s(import_onnx(reference("resnet_fm")), {});
  auto pos = supernet::positions(s.space());
  auto acc = [&](const supernet::SubnetConfig& c) { return made_up_accuracy(s, c); };
  search::SensitivityTable t = search::measure_sensitivity(s.space(), acc, {}, "mid");
  EXPECT_EQ(t.reference, "mid");
  // The same number of probes as from max: every value but the reference's own.
  size_t expect = 0;
  for (const auto& p : pos) expect += p.choices.size() - 1;
  EXPECT_EQ(t.entries.size(), expect);
  // The reference keeps every block and takes the middle of everything else.
  supernet::SubnetCode ref = search::reference_code(pos, "mid");
  supernet::SubnetConfig rc = supernet::decode(pos, ref);
  EXPECT_DOUBLE_EQ(t.base_accuracy, acc(rc));
  for (size_t i = 0; i < pos.size(); ++i) {
    if (pos[i].kind == supernet::Position::Kind::Depth) {
      EXPECT_EQ(ref[i], pos[i].choices.size() - 1);
    }
  }
  EXPECT_GT(
      std::count_if(t.entries.begin(), t.entries.end(), [](const auto& e) { return e.delta > 0; }),
      0)
      << "wider than the reference: positive changes";
  using Comp = search::AccuracyOptions::Composition;
  search::AccuracyModel m(
      t, pos, &s.space(),
      {.composition = Comp::Additive, .mask_skipped_blocks = false, .calibrate = false});
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    supernet::SubnetConfig c = supernet::random_subnet(s.space(), seed);
    c.depths.clear();
    EXPECT_NEAR(m.predict(supernet::encode(pos, c)), acc(c), 1e-12);
  }
  EXPECT_NEAR(m.predict(supernet::encode(pos, supernet::max_subnet(s.space()))), 0.9, 1e-12);
  // Saved and loaded with its reference; an unknown one is refused.
  std::string dir = test::temp_dir("sens_mid");
  t.save(dir + "/s.json");
  EXPECT_EQ(search::SensitivityTable::load(dir + "/s.json").reference, "mid");
  fs::remove_all(dir);
  EXPECT_THROW(search::reference_code(pos, "median"), Error);
}

// A noisy probe as a real one is: an accuracy that falls as widths, kernels, depth and the
// resolution shrink, plus up to +-1.5 points of noise fixed per subnet (so that some shrinking
// moves come out as gains), and per-image results on 2000 images that pair across subnets.
search::ProbeResult noisy_probe(const supernet::Supernet& s, const supernet::SubnetConfig& c) {
  const supernet::SearchSpace& sp = s.space();
  double a = 0.92;
  for (auto& [g, w] : c.widths)
    a -= 0.04 * (1 - static_cast<double>(w) / static_cast<double>(sp.group(g)->size));
  for (auto& [st, d] : c.depths)
    for (const auto& stage : sp.stages)
      if (stage.name == st) a -= 0.01 * static_cast<double>(stage.choices.back() - d);
  if (c.resolution) a -= 0.0004 * static_cast<double>(sp.resolution - c.resolution);
  const size_t h = std::hash<std::string>{}(supernet::subnet_to_json(c, -1));
  a += 0.015 * (static_cast<double>(h % 2001) / 1000.0 - 1.0);
  search::ProbeResult r{0, std::vector<uint8_t>(2000)};
  std::mt19937 images(7);  // the same images for every subnet: results pair
  for (auto& x : r.correct) x = std::uniform_real_distribution<double>(0, 1)(images) < a;
  r.accuracy = std::accumulate(r.correct.begin(), r.correct.end(), 0.0) / 2000.0;
  return r;
}

// Invariant 6: a subnet that contains another is never predicted less accurate, and no
// prediction exceeds the measured max subnet; on three models, both compositions, both
// references, from a table whose raw probes break monotonicity.
TEST(AccuracyModel, MonotoneOnContainedPairsAndNeverAboveTheMaxSubnet) {
  for (const std::string& model : {reference("resnet_fm"), reference("mobilenet_v2_fm"),
                                   test::fixture("mobilenet_v3_small.onnx")}) {
    supernet::Supernet s(import_onnx(model), {});
    auto pos = supernet::positions(s.space());
    for (const char* ref : {"mid", "max"}) {
      search::SensitivityTable t = search::measure_sensitivity(
          s.space(), [&](const supernet::SubnetConfig& c) { return noisy_probe(s, c); }, {}, ref);
      ASSERT_EQ(t.anchors.size(), 3u + search::kAnchorRandom);
      double max_measured = t.anchors[0].accuracy;
      ASSERT_EQ(t.anchors[0].label, "max");
      // The raw table is not monotone: the property below is the model's doing.
      using Comp = search::AccuracyOptions::Composition;
      search::AccuracyModel raw(t, pos, &s.space(),
                                {.monotone = false, .significance_z = 0, .calibrate = false});
      for (auto [comp, z] : {std::pair{Comp::Multiplicative, 0.0}, std::pair{Comp::Additive, 0.0},
                             std::pair{Comp::Multiplicative, 2.0}}) {
        search::AccuracyModel m(t, pos, &s.space(), {.composition = comp, .significance_z = z});
        std::mt19937_64 rng(11);
        int raw_violations = 0;
        for (int k = 0; k < 300; ++k) {
          supernet::SubnetCode a(pos.size()), b(pos.size());
          for (size_t i = 0; i < pos.size(); ++i) {
            a[i] = static_cast<uint8_t>(rng() % pos[i].choices.size());
            b[i] = static_cast<uint8_t>(rng() % 3 == 0 ? rng() % (a[i] + 1) : a[i]);
          }
          EXPECT_GE(m.predict(a), m.predict(b)) << model << " " << ref;
          EXPECT_LE(m.predict(a), max_measured + 1e-12) << model << " " << ref;
          raw_violations += raw.predict(a) < raw.predict(b);
        }
        const auto max_code = supernet::encode(pos, supernet::max_subnet(s.space()));
        EXPECT_LE(m.predict(max_code), max_measured + 1e-12);
        if (comp == Comp::Multiplicative && z == 0) {
          EXPECT_GT(raw_violations, 0) << model << " " << ref << ": the noise should show raw";
        }
      }
    }
  }
}

TEST(AccuracyModel, CalibrationMapsRawScoresOntoTheMeasuredAnchors) {
  supernet::Supernet s(import_onnx(reference("resnet_fm")), {});
  auto pos = supernet::positions(s.space());
  search::SensitivityTable t = search::measure_sensitivity(
      s.space(), [&](const supernet::SubnetConfig& c) { return noisy_probe(s, c); }, {}, "mid");
  search::AccuracyModel m(t, pos, &s.space());
  ASSERT_GE(m.calibration().size(), 3u);
  // Anchors sit on the fitted curve: the max one exactly at its measured accuracy, and the
  // fit is non-decreasing in the raw score.
  const auto max_code = supernet::encode(pos, supernet::max_subnet(s.space()));
  EXPECT_NEAR(m.predict(max_code), t.anchors[0].accuracy, 1e-6);
  for (size_t k = 1; k < m.calibration().size(); ++k)
    EXPECT_GE(m.calibration()[k].second, m.calibration()[k - 1].second);
  // Calibrated predictions land nearer the truth than raw ones on the anchors' kind of subnet.
  search::AccuracyModel raw(t, pos, &s.space(), {.calibrate = false});
  double err_cal = 0, err_raw = 0;
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    supernet::SubnetConfig c = supernet::random_subnet(s.space(), seed);
    double truth = noisy_probe(s, c).accuracy;
    err_cal += std::abs(m.predict(supernet::encode(pos, c)) - truth);
    err_raw += std::abs(raw.predict(supernet::encode(pos, c)) - truth);
  }
  EXPECT_LT(err_cal, err_raw);
  // Saved and loaded with its anchors and paired counts.
  std::string dir = test::temp_dir("sens_anchors");
  t.save(dir + "/s.json");
  search::SensitivityTable back = search::SensitivityTable::load(dir + "/s.json");
  ASSERT_EQ(back.anchors.size(), t.anchors.size());
  EXPECT_EQ(back.entries.front().lost, t.entries.front().lost);
  EXPECT_GE(back.entries.front().lost, 0);
  EXPECT_DOUBLE_EQ(search::AccuracyModel(back, pos, &s.space()).predict(max_code),
                   m.predict(max_code));
  fs::remove_all(dir);
}

TEST(AccuracyModel, IsotonicFitPoolsAdjacentViolators) {
  EXPECT_EQ(search::isotonic_fit({1, 3, 2, 4}), (std::vector<double>{1, 2.5, 2.5, 4}));
  EXPECT_EQ(search::isotonic_fit({3, 2, 1}), (std::vector<double>{2, 2, 2}));
  EXPECT_EQ(search::isotonic_fit({0, 1, 2}), (std::vector<double>{0, 1, 2}));
}

// Re-ranking measures the finalists and keeps the measured best; the family never gives a
// larger budget a worse subnet than a smaller one.
TEST(Evolution, RerankPicksTheMeasuredBestAndTheFamilyIsMonotone) {
  supernet::Supernet s(import_onnx(reference("resnet_fm")), {});
  latency::LatencyTable lut = estimated_lut(s);
  latency::LatencyModel lm(s, lut);
  auto pos = supernet::positions(s.space());
  auto lat = [&](const supernet::SubnetCode& c) { return lm.predict(c); };
  auto acc = [&](const supernet::SubnetCode& c) {
    double a = 0;
    for (size_t i = 0; i < c.size(); ++i) a += c[i];
    return a;
  };
  // The truth disagrees with the predictor: it prefers a low first position.
  auto truth = [&](const supernet::SubnetCode& c) { return acc(c) - 3.0 * c[0]; };
  const double max_ms = lm.predict(supernet::max_subnet(s.space()));
  std::vector<double> budgets = {0.5 * max_ms, 0.7 * max_ms, 0.6 * max_ms};
  search::EvolutionOptions o;
  o.generations = 30;
  o.finalists = 8;
  search::SearchReport r = search::evolve(pos, lat, acc, budgets, o);
  int measured = 0;
  search::rerank(r, [&](const supernet::SubnetCode& c) {
    ++measured;
    return truth(c);
  });
  EXPECT_LE(measured, 24);
  int changed = 0;
  for (const auto& b : r.results) {
    ASSERT_GE(b.finalists.size(), 2u);
    for (size_t i = 0; i < b.finalists.size(); ++i) {
      EXPECT_LE(b.finalists[i].cost, b.budget);
      for (size_t j = 0; j < i; ++j) EXPECT_NE(b.finalists[i].code, b.finalists[j].code);
      EXPECT_GE(*b.best.measured, *b.finalists[i].measured);
    }
    EXPECT_DOUBLE_EQ(*b.best.measured, truth(b.best.code));
    changed += b.rerank_changed;
  }
  EXPECT_GT(changed, 0);
  // A smaller budget's pick that measured better replaces a larger budget's.
  r.results[1].best.measured = *r.results[0].best.measured - 1;
  search::make_family_monotone(r);
  EXPECT_TRUE(r.results[1].raised);
  std::vector<size_t> by_budget = {0, 2, 1};
  for (size_t k = 1; k < by_budget.size(); ++k)
    EXPECT_GE(*r.results[by_budget[k]].best.measured, *r.results[by_budget[k - 1]].best.measured);
}

TEST(Evolution, FitsBudgetsIsDeterministicAndParetoOptimal) {
  supernet::Supernet s(import_onnx(reference("mobilenet_v2_fm")), {});
  latency::LatencyTable lut = estimated_lut(s);
  latency::LatencyModel lm(s, lut);
  auto pos = supernet::positions(s.space());
  // Accuracy grows with every choice index, with diminishing returns.
  auto acc = [&](const supernet::SubnetCode& c) {
    double a = 0;
    for (size_t i = 0; i < c.size(); ++i) a += std::sqrt(static_cast<double>(c[i]) + 1.0 + i % 3);
    return a;
  };
  auto lat = [&](const supernet::SubnetCode& c) { return lm.predict(c); };
  double max_ms = lm.predict(supernet::max_subnet(s.space()));
  std::vector<double> budgets = {0.4 * max_ms, 0.7 * max_ms};
  search::EvolutionOptions o;
  o.generations = 60;
  search::SearchReport a = search::evolve(pos, lat, acc, budgets, o);
  search::SearchReport b = search::evolve(pos, lat, acc, budgets, o);
  ASSERT_EQ(a.results.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_LE(a.results[i].best.cost, budgets[i]);
    EXPECT_EQ(a.results[i].best.code, b.results[i].best.code) << "same seed, same result";
    // Better than the best of 2000 random feasible subnets.
    double best_random = 0;
    for (uint64_t seed = 1; seed <= 2000; ++seed) {
      auto code = supernet::encode(pos, supernet::random_subnet(s.space(), seed));
      if (lat(code) <= budgets[i]) best_random = std::max(best_random, acc(code));
    }
    EXPECT_GE(a.results[i].best.accuracy, best_random);
  }
  EXPECT_GT(a.results[1].best.accuracy, a.results[0].best.accuracy);
  for (size_t i = 1; i < a.pareto.size(); ++i) {
    EXPECT_GT(a.pareto[i].cost, a.pareto[i - 1].cost);
    EXPECT_GT(a.pareto[i].accuracy, a.pareto[i - 1].accuracy);
  }
  double min_ms = lm.predict(supernet::min_subnet(s.space()));
  EXPECT_THROW(search::evolve(pos, lat, acc, {0.5 * min_ms}, o), Error);

  // The random-search baseline: as many samples, none repaired, the best feasible kept.
  search::EvolutionOptions r = o;
  r.strategy = "random";
  search::SearchReport ra = search::evolve(pos, lat, acc, budgets, r);
  search::SearchReport rb = search::evolve(pos, lat, acc, budgets, r);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_GT(ra.results[i].feasible, 0);
    EXPECT_LE(ra.results[i].best.cost, budgets[i]);
    EXPECT_EQ(ra.results[i].best.code, rb.results[i].best.code) << "same seed, same result";
    EXPECT_LE(ra.results[i].best.accuracy, a.results[i].best.accuracy);
  }
  EXPECT_EQ(ra.evaluations, 2 * (1 + o.population * (o.generations + 1)));
  r.strategy = "annealing";
  EXPECT_THROW(search::evolve(pos, lat, acc, budgets, r), Error);

  // A MACs limit beside the latency budget: every pick and every finalist meets both.
  latency::LatencyModel macs(s, latency::Count::Macs);
  auto count = [&](const supernet::SubnetCode& c) { return macs.predict(c); };
  double max_macs = macs.predict(supernet::max_subnet(s.space()));
  std::vector<search::Constraint> limit = {{"--max-macs", count, 0.3 * max_macs}};
  o.finalists = 4;
  for (const char* strategy : {"evolution", "random"}) {
    o.strategy = strategy;
    search::SearchReport c = search::evolve(pos, lat, acc, budgets, o, limit);
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_LE(c.results[i].best.cost, budgets[i]);
      EXPECT_LE(count(c.results[i].best.code), 0.3 * max_macs) << strategy;
      for (const auto& f : c.results[i].finalists) EXPECT_LE(count(f.code), 0.3 * max_macs);
      EXPECT_LE(c.results[i].best.accuracy, a.results[i].best.accuracy);
    }
    for (const auto& p : c.pareto) EXPECT_LE(count(p.code), 0.3 * max_macs);
  }
  double min_macs = macs.predict(supernet::min_subnet(s.space()));
  limit[0].limit = 0.5 * min_macs;
  EXPECT_THROW(search::evolve(pos, lat, acc, budgets, o, limit), Error);
}

// The command users run, end to end on a small model with data: every variant fits its budget
// by prediction, passes the ONNX checker and computes what ONNX Runtime computes; a rerun reuses
// every stage; the report renders in headless Chromium.
TEST(Compile, EndToEndOnHostWithData) {
  std::string dir = test::temp_dir("compile");
  std::string out = dir + "/out";
  std::string args = "compile " + reference("mobilenet_v2_fm") + " --device host -o " + out +
                     " --data fashion-mnist --holdout 800 --calibration-images 256 --epochs 1 "
                     "--max-steps 6 --batch 32 --probe-images 200 --generations 50 --dump-ir "
                     "--width-ratios 0.5,1 --threads 2";
  auto r = run_cli(args);
  ASSERT_EQ(r.status, 0) << r.err;
  nlohmann::json m = nlohmann::json::parse(test::slurp(out + "/manifest.json"));
  // One distinct subnet per file, every budget served, accuracy (re-ranked, exact on the
  // held-out images) never lower for a larger budget, no prediction above the max subnet.
  ASSERT_GE(m["variants"].size(), 1u);
  ASSERT_LE(m["variants"].size(), 4u);
  EXPECT_EQ(m["accuracy_metric"], "top1");
  size_t served = 0;
  std::set<std::string> subnets;
  double last_budget = 0, last_accuracy = -1;
  for (const auto& v : m["variants"]) {
    served += v["budgets_ms"].size();
    subnets.insert(v["subnet"].dump());
    EXPECT_GT(v["budget_ms"].get<double>(), last_budget);
    last_budget = v["budget_ms"].get<double>();
    ASSERT_TRUE(v["reranked_accuracy"].is_number()) << v.dump();
    EXPECT_GE(v["reranked_accuracy"].get<double>(), last_accuracy);
    last_accuracy = v["reranked_accuracy"].get<double>();
    EXPECT_LE(v["predicted_accuracy"].get<double>(),
              m["max_subnet"]["reranked_accuracy"].get<double>() + 1e-9);
  }
  EXPECT_EQ(served, 4u);
  EXPECT_EQ(subnets.size(), m["variants"].size());
  EXPECT_EQ(m["variants"].size() < 4, r.err.find("one file serves them all") != std::string::npos)
      << r.err;
  EXPECT_EQ(m["rerank"]["finalists_per_budget"], 8);
  std::vector<std::string> files;
  at::manual_seed(3);
  for (const auto& v : m["variants"]) {
    EXPECT_LE(v["predicted_latency_ms"].get<double>(), v["budget_ms"].get<double>() + 1e-9);
    EXPECT_FALSE(v["measured_accuracy"].is_null());
    EXPECT_FALSE(v["measured_latency_ms"].is_null());
    std::string f = out + "/" + v["file"].get<std::string>();
    files.push_back(f);
    auto g = import_onnx(f);
    const ir::Shape& in = g->tensor(g->inputs[0]).shape;
    at::Tensor x = at::rand({2, in[1], in[2], in[3]});
    exec::Executor ex(g);
    at::Tensor ours = ex.run({x})[0];
    EXPECT_TRUE(test::all_close(ours, test::run_onnxruntime(f, x, dir))) << f;
  }
  EXPECT_TRUE(test::python_onnx_checker(files));
  for (const char* f : {"supernet.onnx", "space.json", "lut_host.json", "sensitivity.json",
                        "search.json", "finetune.json", "report.html", "ir/import.txt",
                        "ir/supernet.json", "ir/finetune.dot", "ir/export_variant1.txt"})
    EXPECT_TRUE(fs::exists(out + "/" + f)) << f;

  auto again = run_cli(args);
  ASSERT_EQ(again.status, 0) << again.err;
  for (const char* stage : {"[supernet] reusing", "[finetune] reusing", "[profile] reusing",
                            "[sensitivity] reusing", "[search] reusing", "[export] reusing"})
    EXPECT_NE(again.err.find(stage), std::string::npos) << stage << "\n" << again.err;

  auto p = run_cli("predict " + out + " --device host --subnet mid --json");
  ASSERT_EQ(p.status, 0) << p.err;
  nlohmann::json pj = nlohmann::json::parse(p.out);
  EXPECT_TRUE(pj["accuracy"].is_number());
  EXPECT_GT(pj["latency_ms"].get<double>(), 0);

  // validate-accuracy with the ceiling: each subnet also evaluated exactly on the probe images,
  // and the test split's halves ranked against each other.
  auto va =
      run_cli("validate-accuracy " + out + " --data fashion-mnist --samples 3 --ceiling --json");
  ASSERT_EQ(va.status, 0) << va.err;
  nlohmann::json vj = nlohmann::json::parse(va.out);
  ASSERT_EQ(vj["subnets"].size(), 3u);
  for (const auto& row : vj["subnets"]) {
    double on_probe = row["measured_on_probe_images"].get<double>();
    EXPECT_GE(on_probe, 0.0);
    EXPECT_LE(on_probe, 1.0);
  }
  EXPECT_EQ(vj["ceiling"]["half_split_images"].get<size_t>(), 5000u);
  EXPECT_EQ(vj["ceiling"]["probe_images"].get<size_t>(), 200u);
  for (const char* k : {"half_split_kendall_tau", "probe_exact_kendall_tau"}) {
    EXPECT_GE(vj["ceiling"][k].get<double>(), -1.0) << k;
    EXPECT_LE(vj["ceiling"][k].get<double>(), 1.0) << k;
  }

  // The report in a real browser engine.
  if (std::system("command -v chromium >/dev/null 2>&1") != 0) GTEST_SKIP() << "no chromium";
  std::string png = dir + "/report.png";
  std::string cmd =
      "chromium --headless --no-sandbox --disable-gpu --window-size=1000,2400 "
      "--screenshot=" +
      png + " file://" + out + "/report.html >/dev/null 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_GT(fs::exists(png) ? fs::file_size(png) : 0, 20000u) << "screenshot of the report";
  fs::remove_all(dir);
}

TEST(Compile, NamedDeviceWithoutDataIsLabelledEstimatedAndProxy) {
  std::string dir = test::temp_dir("compile_nodata");
  auto r = run_cli("compile " + reference("resnet_fm") + " --device exynos1380 -o " + dir +
                   "/out --probe-images 64 --generations 20 --latency-ms 0.5,2");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("no --data"), std::string::npos);
  EXPECT_NE(r.out.find("(estimated)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("agreement proxy"), std::string::npos) << r.out;
  nlohmann::json m = nlohmann::json::parse(test::slurp(dir + "/out/manifest.json"));
  EXPECT_TRUE(m["estimated_latency"].get<bool>());
  EXPECT_EQ(m["variants"].size(), 2u);
  auto bad = run_cli("compile " + reference("resnet_fm") + " --device nosuch -o " + dir + "/x");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("nosuch"), std::string::npos) << bad.err;
  fs::remove_all(dir);
}

// MACs and parameter budgets: what `inspect` counts on each exported file meets its budget and
// the limit, and equals the count the search chose it by; a latency budget with --max-macs.
TEST(Compile, MacsAndParameterBudgetsAreMetExactlyByTheExportedFiles) {
  std::string dir = test::temp_dir("compile_macs");
  const std::string base = "compile " + reference("resnet_fm") +
                           " --device exynos1380 --probe-images 64 --generations 20 -o ";
  auto inspect = [](const std::string& file) {
    auto r = run_cli("inspect " + file + " --json");
    EXPECT_EQ(r.status, 0) << r.err;
    return nlohmann::json::parse(r.out)["stats"];
  };
  auto full = inspect(reference("resnet_fm"));
  auto r = run_cli(base + dir + "/m --macs 40%,70% --max-params 60%");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("M MACs"), std::string::npos) << r.out;
  nlohmann::json m = nlohmann::json::parse(test::slurp(dir + "/m/manifest.json"));
  EXPECT_EQ(m["budget_unit"], "macs");
  EXPECT_EQ(m["max_subnet"]["macs"], full["macs"]);
  // Percentages are of the max subnet as exported (here BatchNorm folded into bias-free convs
  // adds their biases to the input's parameters).
  EXPECT_GE(m["max_subnet"]["parameters"], full["parameters"]);
  double max_params = std::floor(0.6 * m["max_subnet"]["parameters"].get<double>());
  EXPECT_EQ(m["limits"]["max_parameters"].get<double>(), max_params);
  size_t served = 0;
  for (const auto& v : m["variants"]) {
    auto st = inspect(dir + "/m/" + v["file"].get<std::string>());
    EXPECT_EQ(st["macs"], v["macs"]);
    EXPECT_EQ(st["macs"], v["predicted_macs"]);
    EXPECT_EQ(st["parameters"], v["parameters"]);
    EXPECT_LE(st["macs"].get<double>(), v["budget"].get<double>());
    EXPECT_LE(st["parameters"].get<double>(), max_params);
    served += v["budgets"].size();
  }
  EXPECT_EQ(served, 2u);
  EXPECT_EQ(m["variants"].back()["budgets"].back().get<double>(),
            std::floor(0.7 * full["macs"].get<double>()));

  auto p = run_cli(base + dir + "/p --params 400K --latency-ms 1 2>/dev/null");
  EXPECT_EQ(p.status, 2) << "--params and --latency-ms exclude each other";
  p = run_cli(base + dir + "/p --params 400K");
  ASSERT_EQ(p.status, 0) << p.err;
  m = nlohmann::json::parse(test::slurp(dir + "/p/manifest.json"));
  EXPECT_EQ(m["budget_unit"], "parameters");
  ASSERT_EQ(m["variants"].size(), 1u);
  EXPECT_LE(inspect(dir + "/p/" + m["variants"][0]["file"].get<std::string>())["parameters"],
            400000);

  auto l = run_cli(base + dir + "/l --latency-ms 2 --max-macs 3M");
  ASSERT_EQ(l.status, 0) << l.err;
  m = nlohmann::json::parse(test::slurp(dir + "/l/manifest.json"));
  EXPECT_EQ(m["budget_unit"], "ms");
  for (const auto& v : m["variants"]) EXPECT_LE(v["macs"].get<double>(), 3e6);

  for (const char* bad : {"--macs 0", "--macs abc", "--macs -5%", "--max-params 1e400"}) {
    auto b = run_cli(base + dir + "/bad " + bad);
    EXPECT_EQ(b.status, 2) << bad;
    EXPECT_NE(b.err.find(std::string(bad).substr(0, 6)), std::string::npos) << b.err;
  }
  auto tiny = run_cli(base + dir + "/t --latency-ms 2 --max-macs 1K");
  EXPECT_EQ(tiny.status, 1);
  EXPECT_NE(tiny.err.find("--max-macs"), std::string::npos) << tiny.err;
  fs::remove_all(dir);
}

// A rerun succeeds only with its own, intact outputs: deleted variants, an emptied
// sensitivity.json, a corrupt search.json or manifest.json and a stranger's variant are all
// noticed and rebuilt or removed; budgets must be finite.
TEST(Compile, RerunRebuildsMissingOrChangedOutputs) {
  std::string dir = test::temp_dir("compile_verify");
  std::string out = dir + "/out";
  const std::string args = "compile " + reference("resnet_fm") +
                           " --device exynos1380 --probe-images 64 --generations 10 "
                           "--latency-ms 0.6,1 -o " +
                           out;
  ASSERT_EQ(run_cli(args).status, 0);
  nlohmann::json m = nlohmann::json::parse(test::slurp(out + "/manifest.json"));
  auto files_intact = [&] {
    for (const auto& v : m["variants"]) {
      std::string f = out + "/" + v["file"].get<std::string>();
      if (!fs::exists(f) || sha256_file(f) != v["sha256"].get<std::string>()) return false;
    }
    return true;
  };
  ASSERT_TRUE(files_intact());
  fs::remove_all(out + "/variants");
  auto r = run_cli(args);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("[export]"), std::string::npos);
  EXPECT_NE(r.err.find("running it again"), std::string::npos) << r.err;
  EXPECT_TRUE(files_intact());

  std::ofstream(out + "/sensitivity.json", std::ios::trunc).flush();
  std::ofstream(out + "/search.json", std::ios::trunc) << "{";
  std::ofstream(out + "/manifest.json", std::ios::trunc) << "[]";
  std::ofstream(out + "/variants/variant9_99pct.onnx") << "another model's variant";
  r = run_cli(args);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("[sensitivity] " + out + "/sensitivity.json is missing or changed"),
            std::string::npos)
      << r.err;
  EXPECT_GT(fs::file_size(out + "/sensitivity.json"), 100u);
  EXPECT_FALSE(fs::exists(out + "/variants/variant9_99pct.onnx"));
  m = nlohmann::json::parse(test::slurp(out + "/manifest.json"));
  EXPECT_TRUE(files_intact());

  auto inf = run_cli("compile " + reference("resnet_fm") + " --device exynos1380 -o " + out +
                     " --latency-ms inf");
  EXPECT_EQ(inf.status, 2);
  EXPECT_NE(inf.err.find("--latency-ms"), std::string::npos) << inf.err;
  EXPECT_EQ(run_cli(args + " -q").status, 0) << "the folder still works";
  fs::remove_all(dir);
}

// kill -9 at several points of `compile` (fine-tuning included), then the same command again:
// the variants and the manifest equal an uninterrupted run's.
TEST(Compile, KillNineAtRandomPointsThenRerunMatchesUninterrupted) {
  std::string dir = test::temp_dir("compile_kill9");
  std::string args = "compile " + reference("resnet_fm") +
                     " --device exynos1380 --data fashion-mnist --holdout 600 "
                     "--calibration-images 128 --epochs 1 --max-steps 12 --batch 16 "
                     "--checkpoint-every 2 --probe-images 100 --generations 20 "
                     "--width-ratios 0.5,1 --threads 2 -q -o ";
  auto a = run_cli(args + dir + "/a");
  ASSERT_EQ(a.status, 0) << a.err;
  std::mt19937 rng(11);
  int killed = 0;
  for (int trial = 0; trial < 4; ++trial) {
    pid_t pid = test::start_cli(args + dir + "/b");
    auto delay = std::chrono::milliseconds(300 + rng() % 2500);
    std::this_thread::sleep_for(delay);
    killed += ::kill(pid, SIGKILL) == 0;
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  EXPECT_GT(killed, 0);
  auto b = run_cli(args + dir + "/b");
  ASSERT_EQ(b.status, 0) << b.err;
  nlohmann::json ma = nlohmann::json::parse(test::slurp(dir + "/a/manifest.json"));
  nlohmann::json mb = nlohmann::json::parse(test::slurp(dir + "/b/manifest.json"));
  ASSERT_EQ(ma["variants"].size(), mb["variants"].size());
  for (size_t i = 0; i < ma["variants"].size(); ++i) {
    EXPECT_EQ(ma["variants"][i], mb["variants"][i]) << i;
    std::string f = ma["variants"][i]["file"].get<std::string>();
    EXPECT_TRUE(test::slurp(dir + "/a/" + f) == test::slurp(dir + "/b/" + f)) << f;
  }
  EXPECT_TRUE(test::slurp(dir + "/a/sensitivity.json").size() > 0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace autotailor
