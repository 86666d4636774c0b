// The latency LUT: the enumeration of unique step configurations is complete (every step of
// any subnet is among them) and tiny next to the space; the LUT file round-trips; prediction
// refuses a LUT that lacks an entry; profile / predict / validate-latency work end to end.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "autotailor/common/error.h"
#include "autotailor/exec/timing.h"
#include "autotailor/import/onnx_import.h"
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

INSTANTIATE_TEST_SUITE_P(Torchvision, LatencyModel,
                         ::testing::Values("resnet18", "mobilenet_v3_small", "mobilenet_v2"));

TEST(LatencyTable, RoundTripAndMissingEntries) {
  Supernet s(import_onnx(test::fixture("mobilenet_v3_small.onnx")), {});
  std::string dir = test::temp_dir("lut");
  latency::LatencyTable t;
  t.threads = 2;
  t.overhead_ms = 0.25;
  t.scale = 1.1;
  for (const std::string& k : latency::step_keys(*s.derive(supernet::max_subnet(s.space()))))
    t.entries[k] = {0.5, 0.4, 0.6, 10, false};
  t.save(dir + "/lut.json");
  latency::LatencyTable back = latency::LatencyTable::load(dir + "/lut.json");
  EXPECT_EQ(back.entries.size(), t.entries.size());
  EXPECT_EQ(back.threads, 2);
  auto p = latency::predict(s, back, supernet::max_subnet(s.space()));
  EXPECT_NEAR(p.latency_ms, 0.25 + 1.1 * 0.5 * static_cast<double>(p.steps.size()), 1e-9);
  EXPECT_THROW(latency::predict(s, back, supernet::min_subnet(s.space())), Error);
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
  auto again = test::run_cli("profile " + sn + " --device host --threads 1");
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_NE(again.err.find("; 0 covering subnets to time in context"), std::string::npos)
      << again.err;
  auto lut = nlohmann::json::parse(test::slurp(sn + "/lut_host.json"));
  EXPECT_EQ(lut["device"], "host");
  EXPECT_EQ(lut["threads"], 1);
  EXPECT_GT(lut["entries"].size(), 10u);
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
  auto once = test::run_cli("validate-latency " + sn + " --device host --samples 2 --once --json");
  ASSERT_EQ(once.status, 0) << once.err;
  auto jo = nlohmann::json::parse(once.out);
  EXPECT_TRUE(jo["repeat_within_10pct"].is_null());
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
  EXPECT_EQ(host["method"], "isolated");
  std::vector<std::string> csvs;
  size_t models = 0;
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
      if (e["id"] != latency::kCallOverheadId) {
        ++models;
        EXPECT_EQ(e["id"], latency::config_id(e["key"].get<std::string>()));
      }
    }
    csvs.push_back(csv);
  }
  EXPECT_EQ(models, host["entries"].size()) << "the shards partition the configurations";
  auto imp = test::run_cli("profile " + sn + " --device exynos1380 --import " + csvs[0] +
                           " --import " + csvs[1] + " --runtime executor-selftest");
  ASSERT_EQ(imp.status, 0) << imp.err;
  auto lut = nlohmann::json::parse(test::slurp(sn + "/lut_exynos1380.json"));
  EXPECT_EQ(lut["method"], "import");
  EXPECT_EQ(lut["runtime"], "executor-selftest");
  ASSERT_EQ(lut["entries"].size(), host["entries"].size());
  // Same configurations, same executor: the imported entries agree with direct profiling
  // within timing noise, in the median over configurations.
  std::vector<double> ratio;
  for (const auto& [key, e] : lut["entries"].items()) {
    EXPECT_FALSE(e.contains("estimated")) << key;
    ASSERT_TRUE(host["entries"].contains(key)) << key;
    double d = host["entries"][key]["median_ms"].get<double>();
    ratio.push_back((e["median_ms"].get<double>() + lut["overhead_ms"].get<double>()) / d);
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
  auto again = test::run_cli("profile " + sn + " --device host-ort");
  EXPECT_NE(again.err.find("nothing to measure"), std::string::npos) << again.err;
  auto v = test::run_cli("validate-latency " + sn + " --device host-ort --samples 2 --json");
  ASSERT_EQ(v.status, 0) << v.err;
  auto j = nlohmann::json::parse(v.out);
  for (const auto& r : j["subnets"]) EXPECT_GT(r["measured_ms"].get<double>(), 0.0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace autotailor
