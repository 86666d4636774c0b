// The latency LUT: the enumeration of unique step configurations is complete (every step of
// any subnet is among them) and tiny next to the space; the LUT file round-trips; prediction
// refuses a LUT that lacks an entry; profile / predict / validate-latency work end to end.
#include <nlohmann/json.hpp>

#include <set>

#include "autotailor/common/error.h"
#include "autotailor/import/onnx_import.h"
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

TEST(LatencyCli, ProfileResumesPredictAndValidate) {
  std::string dir = test::temp_dir("latency_cli");
  std::string sn = dir + "/sn";
  // A small space, so that profiling takes seconds.
  ASSERT_EQ(test::run_cli("supernet " + test::fixture("mobilenet_v3_small.onnx") + " -o " + sn +
                          " --no-resolution --no-kernel --no-depth --width-ratios 0.5,1")
                .status,
            0);
  auto first = test::run_cli("profile " + sn + " --device host --threads 1");
  ASSERT_EQ(first.status, 0) << first.err;
  auto again = test::run_cli("profile " + sn + " --device host --threads 1");
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_NE(again.err.find(", 0 to measure"), std::string::npos) << again.err;
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
  auto bad = test::run_cli("predict " + sn + " --device exynos1380 --subnet min");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("exynos1380"), std::string::npos);
}

}  // namespace
}  // namespace autotailor
