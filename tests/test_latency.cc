// The latency LUT: the enumeration of unique step configurations is complete (every step of
// any subnet is among them) and tiny next to the space; the LUT file round-trips; prediction
// refuses a LUT that lacks an entry; profile / predict / validate-latency work end to end.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "autotailor/common/error.h"
#include "autotailor/exec/executor.h"
#include "autotailor/exec/timing.h"
#include "autotailor/export/export.h"
#include "autotailor/import/onnx_import.h"
#include "autotailor/ir/dump.h"
#include "autotailor/latency/bundle.h"
#include "autotailor/latency/latency.h"
#include "test_util.h"

namespace autotailor {
namespace {

using supernet::Supernet;

class LatencyModel : public ::testing::TestWithParam<std::string> {};

TEST_P(LatencyModel, UniqueConfigsCoverEveryStepOfRandomSubnets) {
  Supernet s(import_onnx(test::fixture(GetParam() + ".onnx")), {});
  latency::SpaceConfigs cs = latency::unique_configs(s);
  std::set<std::string> keys;
  for (const auto& c : cs.configs) keys.insert(c.key);
  EXPECT_EQ(keys.size(), cs.configs.size());
  // Thousands of configurations stand for a space of 10^9 and more subnets.
  EXPECT_LT(std::log10(static_cast<double>(keys.size())), cs.log10_subnets - 5);
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    auto cfg = supernet::random_subnet(s.space(), seed);
    for (const std::string& k : latency::step_keys(*s.derive(cfg)))
      EXPECT_TRUE(keys.count(k)) << "random:" << seed << " runs a step not enumerated: " << k;
  }
}

// MACs and parameter budgets rest on these: the step tables' sums equal what graph_stats()
// and parameter_count() count on the derived subnet (what `inspect` prints), exactly.
TEST_P(LatencyModel, CountsAreExactOnRandomSubnets) {
  Supernet s(import_onnx(test::fixture(GetParam() + ".onnx")), {});
  latency::LatencyModel macs(s, latency::Count::Macs), params(s, latency::Count::Parameters);
  std::vector<supernet::Position> pos = supernet::positions(s.space());
  std::vector<supernet::SubnetConfig> cfgs = {supernet::max_subnet(s.space()),
                                              supernet::min_subnet(s.space())};
  for (uint64_t seed = 1; seed <= 25; ++seed)
    cfgs.push_back(supernet::random_subnet(s.space(), seed));
  for (size_t i = 0; i < cfgs.size(); ++i) {
    std::shared_ptr<const ir::Graph> g = s.derive(cfgs[i]);
    ir::GraphStats st = ir::graph_stats(*g);
    supernet::SubnetCode code = supernet::encode(pos, cfgs[i]);
    EXPECT_EQ(static_cast<int64_t>(macs.predict(code)), st.macs) << "subnet " << i;
    EXPECT_EQ(static_cast<int64_t>(params.predict(code)), g->parameter_count()) << "subnet " << i;
    EXPECT_EQ(macs.predict(cfgs[i]), macs.predict(code));
    if (i >= 4) continue;
    // What `inspect` counts on the exported file (weights sliced, BatchNorm folded).
    std::string f = test::temp_dir("counts") + "/v.onnx";
    export_subnet(s, cfgs[i], f);
    auto back = import_onnx(f);
    EXPECT_EQ(static_cast<int64_t>(macs.predict(code)), ir::graph_stats(*back).macs) << i;
    EXPECT_EQ(static_cast<int64_t>(params.predict(code)), back->parameter_count()) << i;
  }
  // Counts fall with every shrinking step.
  EXPECT_LT(macs.predict(cfgs[1]), macs.predict(cfgs[0]));
  EXPECT_LT(params.predict(cfgs[1]), params.predict(cfgs[0]));
}

INSTANTIATE_TEST_SUITE_P(Torchvision, LatencyModel,
                         ::testing::Values("resnet18", "mobilenet_v3_small", "mobilenet_v2"));

TEST(LatencyTable, RoundTripAndMissingEntries) {
  Supernet s(import_onnx(test::fixture("mobilenet_v3_small.onnx")), {});
  std::string dir = test::temp_dir("lut");
  latency::LatencyTable t;
  t.threads = 2;
  t.overhead_ms = 0.25;
  t.scale = 1.1;
  t.reference_ms = 3.5;
  t.reference_samples = 11;
  t.relative = true;
  for (const std::string& k : latency::step_keys(*s.derive(supernet::max_subnet(s.space()))))
    t.entries[k] = {0.5, 0.4, 0.6, 10, false};
  t.save(dir + "/lut.json");
  latency::LatencyTable back = latency::LatencyTable::load(dir + "/lut.json");
  EXPECT_EQ(back.entries.size(), t.entries.size());
  EXPECT_EQ(back.threads, 2);
  EXPECT_EQ(back.reference_ms, 3.5);
  EXPECT_EQ(back.reference_samples, 11);
  EXPECT_TRUE(back.relative);
  auto p = latency::predict(s, back, supernet::max_subnet(s.space()));
  EXPECT_NEAR(p.latency_ms, 0.25 + 1.1 * 0.5 * static_cast<double>(p.steps.size()), 1e-9);
  EXPECT_THROW(latency::predict(s, back, supernet::min_subnet(s.space())), Error);
}

// Fusion-rule detection: the kinds steps are grouped by, the sampled boundaries bundled as
// two-step models, and the rules fitted on their measurements.
TEST(FusionRules, StepKindsAndSampledEdges) {
  Supernet s(import_onnx(test::fixture("mobilenet_v2.onnx")), {});
  latency::SpaceConfigs cs = latency::unique_configs(s);
  std::set<std::string> kinds, keys;
  for (const auto& c : cs.configs) {
    kinds.insert(latency::step_kind(c.key));
    keys.insert(c.key);
  }
  for (const char* k : {"Conv", "DepthwiseConv", "GlobalAveragePool", "Gemm"})
    EXPECT_TRUE(kinds.count(k)) << k;
  EXPECT_FALSE(kinds.count("GroupConv"));
  EXPECT_EQ(latency::step_kind("Conv+Relu|1x64x8x8,c64x32x3x3,c64|group=2;pads=[1,1,1,1]"),
            "GroupConv");
  EXPECT_EQ(latency::step_kind("MaxPool|1x64x8x8|kernel_shape=[3,3]"), "MaxPool");

  ASSERT_FALSE(cs.edges.empty());
  EXPECT_GT(cs.unique_edges, cs.edges.size()) << "a sample, not every boundary";
  std::map<std::pair<std::string, std::string>, int> per;
  for (const auto& e : cs.edges) {
    EXPECT_TRUE(keys.count(e.producer) && keys.count(e.consumer)) << e.key;
    EXPECT_EQ(e.producer_kind, latency::step_kind(e.producer));
    EXPECT_GT(e.bytes, 0);
    ++per[{e.producer_kind, e.consumer_kind}];
  }
  for (const auto& [k, n] : per) EXPECT_LE(n, static_cast<int>(latency::kEdgesPerKindPair));
  EXPECT_TRUE(per.count({"Conv", "DepthwiseConv"}));
  EXPECT_TRUE(per.count({"DepthwiseConv", "Conv"}));
  // A pair model holds both steps and runs: the producer's output stays inside it.
  const latency::EdgeConfig& e = cs.edges.front();
  std::vector<std::string> ks = latency::step_keys(*e.graph);
  EXPECT_EQ(ks.size(), 2u) << e.key;
  exec::Executor ex(e.graph);
  EXPECT_NO_THROW(ex.run(exec::random_inputs(*e.graph, 1, 0, true)));
}

TEST(FusionRules, FitDetectClampAndRoundTrip) {
  const std::string conv = "Conv|1x8x4x4,c8x8x1x1,c8|group=1", dw = "Conv|1x8x4x4,c8x1x3x3|group=8",
                    pool = "MaxPool|1x8x4x4|kernel_shape=[2,2]";
  latency::LatencyTable t;
  t.method = "import";
  t.entries[conv] = {0.5, 0.5, 0.5, 10, false};
  t.entries[dw] = {0.3, 0.3, 0.3, 10, false};
  t.entries[pool] = {0.2, 0.2, 0.2, 10, false};
  // conv -> dw saves 0.01 ms + 0.02 ms/MB; one pair badly timed does not tilt the fit.
  for (int k = 1; k <= 7; ++k) {
    double saving = k == 4 ? 0.5 : 0.01 + 0.02 * k;
    t.pairs["cd" + std::to_string(k)] = {conv, dw, k * 1000000, 0.8 - saving};
  }
  // conv -> pool saves nothing, within noise.
  for (int k = 1; k <= 4; ++k)
    t.pairs["cp" + std::to_string(k)] = {conv, pool, k * 1000000, 0.7 + (k % 2 ? 0.001 : -0.001)};
  t.fit_fusion_rules();
  ASSERT_EQ(t.rules.size(), 2u);
  const latency::FusionRule* cd = nullptr;
  for (const auto& r : t.rules)
    if (r.consumer == "DepthwiseConv") cd = &r;
  ASSERT_NE(cd, nullptr);
  EXPECT_EQ(cd->producer, "Conv");
  EXPECT_EQ(cd->pairs, 7);
  EXPECT_TRUE(cd->detected);
  EXPECT_NEAR(cd->ms_per_mb, 0.02, 1e-9);
  EXPECT_NEAR(cd->intercept_ms, 0.01, 1e-9);
  EXPECT_NEAR(cd->max_share, 0.5 / 0.8, 1e-9);
  EXPECT_NEAR(t.boundary_saving("Conv", "DepthwiseConv", 2000000, 0.8), 0.05, 1e-9);
  // Clamped to the largest share measured, and never negative.
  EXPECT_NEAR(t.boundary_saving("Conv", "DepthwiseConv", 100000000, 0.8), 0.5, 1e-9);
  EXPECT_EQ(t.boundary_saving("Conv", "MaxPool", 2000000, 0.7), 0.0) << "not detected";
  EXPECT_EQ(t.boundary_saving("DepthwiseConv", "Conv", 2000000, 0.7), 0.0) << "no rule";

  std::string dir = test::temp_dir("fusion_lut");
  t.save(dir + "/lut.json");
  latency::LatencyTable back = latency::LatencyTable::load(dir + "/lut.json");
  EXPECT_EQ(back.pairs.size(), t.pairs.size());
  ASSERT_EQ(back.rules.size(), 2u);
  EXPECT_NEAR(back.boundary_saving("Conv", "DepthwiseConv", 2000000, 0.8), 0.05, 1e-9);
  std::filesystem::remove_all(dir);
}

TEST(Calibration, SubnetsFitAndRoundTrip) {
  Supernet s(import_onnx(test::fixture("mobilenet_v2.onnx")), {});
  auto calib = latency::calibration_subnets(s.space());
  ASSERT_EQ(calib.size(), 2u + latency::kCalibrationRandom);
  EXPECT_EQ(calib[0].first, "max");
  EXPECT_EQ(calib[0].second, supernet::max_subnet(s.space()));
  EXPECT_EQ(calib[1].first, "min");
  EXPECT_EQ(calib[2].first, "random:1001");
  EXPECT_EQ(latency::whole_id("random:1001"), "whole-random-1001");
  // measured = 0.3 + 0.8 * predicted exactly: recovered.
  std::vector<double> x = {1, 2, 4, 8}, y;
  for (double v : x) y.push_back(0.3 + 0.8 * v);
  latency::OverheadScale fit = latency::fit_overhead_scale(x, y);
  EXPECT_NEAR(fit.overhead_ms, 0.3, 1e-9);
  EXPECT_NEAR(fit.scale, 0.8, 1e-9);
  EXPECT_EQ(fit.floor_ratio, 0.0) << "a positive overhead needs no floor";
  // measured = -0.3 + 1.2 * predicted: the negative overhead is kept (it is what was measured),
  // and the floor is the smallest measured / calibrated ratio, at the smallest point:
  // 0.9 / 1.2. A subnet far smaller than any measured one is predicted above zero.
  std::vector<double> y2;
  for (double v : x) y2.push_back(-0.3 + 1.2 * v);
  latency::OverheadScale neg = latency::fit_overhead_scale(x, y2);
  EXPECT_NEAR(neg.overhead_ms, -0.3, 1e-9);
  EXPECT_NEAR(neg.scale, 1.2, 1e-9);
  EXPECT_NEAR(neg.floor_ratio, 0.9 / 1.2, 1e-9);
  latency::LatencyTable lt;
  lt.overhead_ms = neg.overhead_ms;
  lt.scale = neg.scale;
  lt.floor_ratio = neg.floor_ratio;
  EXPECT_NEAR(lt.total(1.2 * 4), -0.3 + 1.2 * 4, 1e-9) << "inside the measured range: the line";
  EXPECT_NEAR(lt.total(0.012), 0.75 * 0.012, 1e-12) << "below it: the floor, positive";
  EXPECT_GT(lt.total(1e-6), 0.0);
  latency::LatencyTable t;
  t.calibration = {{"max", 3.5}, {"min", 1.25}};
  t.floor_ratio = 0.75;
  std::string dir = test::temp_dir("calib_lut");
  t.save(dir + "/lut.json");
  EXPECT_EQ(latency::LatencyTable::load(dir + "/lut.json").calibration, t.calibration);
  EXPECT_EQ(latency::LatencyTable::load(dir + "/lut.json").floor_ratio, 0.75);
  std::filesystem::remove_all(dir);
}

// A small space of mobilenet_v3_small (two widths per group, nothing else elastic), so that
// profiling takes seconds. Returns `supernet`'s exit status.
int small_supernet(const std::string& sn) {
  return test::run_cli("supernet " + test::fixture("mobilenet_v3_small.onnx") + " -o " + sn +
                       " --no-resolution --no-kernel --no-depth --width-ratios 0.5,1")
      .status;
}

TEST(LatencyCli, ProfileResumesPredictAndValidate) {
  std::string dir = test::temp_dir("latency_cli");
  std::string sn = dir + "/sn";
  ASSERT_EQ(small_supernet(sn), 0);
  auto first = test::run_cli("profile " + sn + " --device host --threads 1");
  ASSERT_EQ(first.status, 0) << first.err;
  // The speed reference: the max subnet, a block of it timed after every covering subnet, and
  // the entries measured in its units.
  auto reference = nlohmann::json::parse(test::slurp(sn + "/lut_host.json"))["speed_reference"];
  EXPECT_GT(reference["median_ms"].get<double>(), 0.0);
  EXPECT_GE(reference["samples"].get<int>(), 2);
  EXPECT_TRUE(reference["relative"].get<bool>());
  auto again = test::run_cli("profile " + sn + " --device host --threads 1");
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_NE(again.err.find("; 0 covering subnets to time in context"), std::string::npos)
      << again.err;
  auto lut = nlohmann::json::parse(test::slurp(sn + "/lut_host.json"));
  EXPECT_EQ(lut["device"], "host");
  EXPECT_EQ(lut["threads"], 1);
  EXPECT_GT(lut["entries"].size(), 10u);
  EXPECT_EQ(lut["speed_reference"], reference) << "a rerun that measures nothing keeps it";
  auto pr = test::run_cli("predict " + sn + " --device host --subnet min --json");
  ASSERT_EQ(pr.status, 0) << pr.err;
  EXPECT_GT(nlohmann::json::parse(pr.out)["latency_ms"].get<double>(), 0.0);
  auto v = test::run_cli("validate-latency " + sn + " --device host --samples 3 --json");
  ASSERT_EQ(v.status, 0) << v.err;
  auto j = nlohmann::json::parse(v.out);
  EXPECT_EQ(j["subnets"].size(), 3u);
  EXPECT_TRUE(j.contains("within_10pct"));
  EXPECT_TRUE(j["repeat_within_10pct"].is_number());
  // Each row names its subnet's config, which is what a learned predictor is fitted on.
  EXPECT_EQ(j["subnets"][0]["config"]["format"], "autotailor-subnet");
  EXPECT_EQ(j["subnets"][0]["round_medians_ms"].size(), 6u) << "interleaved rounds";
  // The reference timed again after each subnet in every round; measured times in its units.
  double drift = j["speed_reference"]["drift"].get<double>();
  EXPECT_NEAR(
      drift,
      j["speed_reference"]["measured_ms"].get<double>() / reference["median_ms"].get<double>(),
      1e-9);
  EXPECT_EQ(j["speed_reference"]["paired"], "subnet");
  for (const auto& r : j["subnets"]) {
    std::vector<double> rm = r["round_medians_ms"], rr = r["reference_round_medians_ms"], q;
    ASSERT_EQ(rr.size(), rm.size());
    for (size_t k = 0; k < rm.size(); ++k) q.push_back(rm[k] / rr[k]);
    EXPECT_NEAR(r["drift"].get<double>(),
                exec::summarize(rr).median_ms / reference["median_ms"].get<double>(), 1e-9);
    EXPECT_NEAR(r["adjusted_measured_ms"].get<double>(),
                exec::summarize(q).median_ms * reference["median_ms"].get<double>(), 1e-9);
  }
  EXPECT_TRUE(j["adjusted"]["within_10pct"].is_number());
  // More subnets than one batch of 20: every one measured, in order.
  auto once = test::run_cli("validate-latency " + sn + " --device host --samples 22 --once --json");
  ASSERT_EQ(once.status, 0) << once.err;
  auto jo = nlohmann::json::parse(once.out);
  EXPECT_TRUE(jo["repeat_within_10pct"].is_null());
  ASSERT_EQ(jo["subnets"].size(), 22u);
  for (int i = 0; i < 22; ++i) {
    EXPECT_EQ(jo["subnets"][i]["subnet"], "random:" + std::to_string(i + 1));
    EXPECT_EQ(jo["subnets"][i]["round_medians_ms"].size(), 3u);
    EXPECT_GT(jo["subnets"][i]["measured_ms"].get<double>(), 0.0);
    EXPECT_GT(jo["subnets"][i]["drift"].get<double>(), 0.0);
  }
  for (int i = 0; i < 22; ++i)  // each subnet's own reference timings
    EXPECT_EQ(jo["subnets"][i]["reference_round_medians_ms"].size(), 3u);
  EXPECT_TRUE(jo["subnets"][1]["remeasured_ms"].is_null());
  EXPECT_EQ(jo["subnets"][1]["config"], j["subnets"][1]["config"]);  // random:2 both times
  auto bad = test::run_cli("predict " + sn + " --device exynos1380 --subnet min");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("exynos1380"), std::string::npos);
}

// The on-device flow, self-tested on the host: a bundle in two shards, each model timed by our
// own executor the way a device's benchmark tool would time it, the CSVs imported; the LUT
// then agrees with profiling the steps directly, and bad CSVs are named errors.
TEST(LatencyCli, BundleShardsImportAndCompareWithDirectProfiling) {
  std::string dir = test::temp_dir("latency_bundle");
  std::string sn = dir + "/sn";
  ASSERT_EQ(small_supernet(sn), 0);
  auto direct = test::run_cli("profile " + sn + " --device host --method isolated");
  ASSERT_EQ(direct.status, 0) << direct.err;
  auto host = nlohmann::json::parse(test::slurp(sn + "/lut_host.json"));
  EXPECT_FALSE(host["speed_reference"]["relative"].get<bool>()) << "isolated: sampled, not paired";
  EXPECT_EQ(host["method"], "isolated");
  std::vector<std::string> csvs;
  size_t models = 0, pairs = 0, whole = 0;
  double call_ms = 0;  // the call-overhead model's time, averaged over the shards
  for (int shard = 0; shard < 2; ++shard) {
    std::string b = dir + "/bundle" + std::to_string(shard);
    auto r = test::run_cli("profile " + sn + " --device exynos1380 --bundle " + b + " --shard " +
                           std::to_string(shard) + "/2");
    ASSERT_EQ(r.status, 0) << r.err;
    auto m = nlohmann::json::parse(test::slurp(b + "/manifest.json"));
    EXPECT_EQ(m["format"], "autotailor-bundle");
    std::string csv = b + "/results.csv";
    std::ofstream out(csv);
    out << "# timed by the test with the executor\nid,runs,median_ms\n";
    for (const auto& e : m["models"]) {
      auto g = import_onnx(b + "/" + e["file"].get<std::string>());
      EXPECT_EQ(g->inputs.size(), e["inputs"].size());
      exec::Executor ex(g);
      exec::Timing t = exec::time_runs(ex, exec::random_inputs(*g, 1, 0, true), 3, 10, 10.0, 100);
      out << e["id"].get<std::string>() << "," << t.runs << "," << t.median_ms << "\n";
      if (e["id"] == latency::kCallOverheadId) {
        call_ms += t.median_ms / 2;
        continue;
      }
      if (e.contains("whole")) {
        ++whole;  // a calibration subnet, exported whole, in shard 0 only
        EXPECT_EQ(shard, 0);
        EXPECT_EQ(e["id"], latency::whole_id(e["whole"].get<std::string>()));
        continue;
      }
      EXPECT_EQ(e["id"], latency::config_id(e["key"].get<std::string>()));
      if (e.contains("pair")) {
        ++pairs;  // a two-step model of the fusion-rule test
        EXPECT_EQ(ex.plan().size(), 2u) << e["key"];
      } else {
        ++models;
      }
    }
    csvs.push_back(csv);
  }
  EXPECT_EQ(models, host["entries"].size()) << "the shards partition the configurations";
  EXPECT_GT(pairs, 0u);
  EXPECT_EQ(whole, 2u + latency::kCalibrationRandom);
  auto imp = test::run_cli("profile " + sn + " --device exynos1380 --import " + csvs[0] +
                           " --import " + csvs[1] + " --runtime executor-selftest");
  ASSERT_EQ(imp.status, 0) << imp.err;
  auto lut = nlohmann::json::parse(test::slurp(sn + "/lut_exynos1380.json"));
  EXPECT_EQ(lut["method"], "import");
  EXPECT_EQ(lut["runtime"], "executor-selftest");
  ASSERT_EQ(lut["entries"].size(), host["entries"].size());
  // Every pair model arrived and every pair of kinds got a rule (detected or not).
  ASSERT_TRUE(lut.contains("fusion"));
  EXPECT_EQ(lut["fusion"]["pairs"].size(), pairs);
  std::set<std::pair<std::string, std::string>> kinds;
  for (const auto& [id, p] : lut["fusion"]["pairs"].items())
    kinds.insert({latency::step_kind(p["producer"]), latency::step_kind(p["consumer"])});
  EXPECT_EQ(lut["fusion"]["rules"].size(), kinds.size());
  // The whole calibration subnets arrived and the per-model correction was fitted on them.
  EXPECT_EQ(lut["calibration"].size(), 2u + latency::kCalibrationRandom);
  EXPECT_EQ(lut["calibration_subnets"], 2 + latency::kCalibrationRandom);
  EXPECT_GT(lut["scale"].get<double>(), 0.0);
  // Same configurations, same executor: the imported entries agree with direct profiling
  // within timing noise, in the median over configurations.
  std::vector<double> ratio;
  for (const auto& [key, e] : lut["entries"].items()) {
    EXPECT_FALSE(e.contains("estimated")) << key;
    ASSERT_TRUE(host["entries"].contains(key)) << key;
    double d = host["entries"][key]["median_ms"].get<double>();
    ratio.push_back((e["median_ms"].get<double>() + call_ms) / d);
  }
  std::sort(ratio.begin(), ratio.end());
  EXPECT_GT(ratio[ratio.size() / 2], 0.7);
  EXPECT_LT(ratio[ratio.size() / 2], 1.4);
  auto pr = test::run_cli("predict " + sn + " --device exynos1380 --subnet max");
  ASSERT_EQ(pr.status, 0) << pr.err;
  EXPECT_EQ(pr.out.find("estimated"), std::string::npos) << pr.out;

  // Bad CSVs: a foreign id, a bad number, no header.
  std::string bad = dir + "/bad.csv";
  std::ofstream(bad) << "id,median_ms\n0123456789abcdef,0.5\n";
  auto e1 = test::run_cli("profile " + sn + " --device exynos1380 --import " + bad);
  EXPECT_EQ(e1.status, 1);
  EXPECT_NE(e1.err.find("bad.csv: id 0123456789abcdef is not an operator configuration"),
            std::string::npos)
      << e1.err;
  std::ofstream(bad) << "id,median_ms\ncall-overhead,fast\n";
  auto e2 = test::run_cli("profile " + sn + " --device exynos1380 --import " + bad);
  EXPECT_NE(e2.err.find("bad.csv:2: median_ms 'fast' is not a non-negative number"),
            std::string::npos)
      << e2.err;
  std::ofstream(bad) << "model,ms\n";
  auto e3 = test::run_cli("profile " + sn + " --device exynos1380 --import " + bad);
  EXPECT_NE(e3.err.find("bad.csv:1: the header must name the columns id and median_ms"),
            std::string::npos)
      << e3.err;
  auto e4 =
      test::run_cli("profile " + sn + " --device exynos1380 --bundle " + dir + "/x --shard 2/2");
  EXPECT_NE(e4.err.find("--shard 2/2"), std::string::npos) << e4.err;
  std::filesystem::remove_all(dir);
}

// A runtime we did not write: ONNX Runtime times the bundle (tools/ort_run.js), the results
// become the LUT of host-ort, and validate-latency measures whole exports in ONNX Runtime.
TEST(LatencyCli, HostOrtProfilesThroughOnnxRuntime) {
  if (std::system("command -v node >/dev/null 2>&1") != 0) GTEST_SKIP() << "no node";
  std::string dir = test::temp_dir("latency_ort");
  std::string sn = dir + "/sn";
  ASSERT_EQ(small_supernet(sn), 0);
  auto p = test::run_cli("profile " + sn + " --device host-ort");
  ASSERT_EQ(p.status, 0) << p.err;
  auto lut = nlohmann::json::parse(test::slurp(sn + "/lut_host-ort.json"));
  EXPECT_EQ(lut["method"], "import");
  EXPECT_NE(lut["runtime"].get<std::string>().find("ONNX Runtime"), std::string::npos);
  EXPECT_GT(lut["profiling_seconds"].get<double>(), 0.0);
  {
    // Timed against the reference: every row's median is its raw median over the reference
    // block after it, times one unit common to all rows.
    std::ifstream csv(sn + "/results_host-ort.csv");
    std::string line;
    std::getline(csv, line);
    EXPECT_EQ(line, "id,median_ms,p10_ms,p90_ms,runs,raw_median_ms,reference_ms");
    std::vector<double> units;
    while (std::getline(csv, line)) {
      std::vector<std::string> f;
      std::stringstream ss(line);
      for (std::string c; std::getline(ss, c, ',');) f.push_back(c);
      ASSERT_EQ(f.size(), 7u) << line;
      double median = std::stod(f[1]), raw = std::stod(f[5]), ref = std::stod(f[6]);
      EXPECT_GT(ref, 0.0) << line;
      if (raw > 0.05) units.push_back(median / raw * ref);
    }
    ASSERT_GT(units.size(), 2u);
    auto [lo, hi] = std::minmax_element(units.begin(), units.end());
    EXPECT_NEAR(*lo / *hi, 1.0, 0.01);
  }
  auto again = test::run_cli("profile " + sn + " --device host-ort");
  EXPECT_NE(again.err.find("nothing to measure"), std::string::npos) << again.err;
  auto v = test::run_cli("validate-latency " + sn + " --device host-ort --samples 2 --json");
  ASSERT_EQ(v.status, 0) << v.err;
  auto j = nlohmann::json::parse(v.out);
  for (const auto& r : j["subnets"]) {
    EXPECT_GT(r["measured_ms"].get<double>(), 0.0);
    EXPECT_EQ(r["round_medians_ms"].size(), 6u) << "interleaved rounds";
  }
  // The bundle's whole max subnet is the speed reference, timed again next to the subnets.
  EXPECT_EQ(lut["speed_reference"]["median_ms"], lut["calibration"]["max"]);
  EXPECT_GT(j["speed_reference"]["measured_ms"].get<double>(), 0.0);
  EXPECT_EQ(j["speed_reference"]["paired"], "round") << "the reference once in every round";
  EXPECT_EQ(j["subnets"][0]["reference_round_medians_ms"],
            j["subnets"][1]["reference_round_medians_ms"]);
  EXPECT_TRUE(lut["speed_reference"]["relative"].get<bool>())
      << "the bundle timed with --reference";
  // The two-step models of the fusion-rule test were timed in ONNX Runtime and fitted.
  EXPECT_FALSE(lut["fusion"]["pairs"].empty());
  EXPECT_FALSE(lut["fusion"]["rules"].empty());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace autotailor
