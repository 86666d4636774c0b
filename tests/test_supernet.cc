// The SuperNet on real architectures: a non-trivial space found with no configuration; the
// reordered max subnet reproduces PyTorch (invariant 1); 20 random subnets each export to files
// that pass the ONNX checker, compute what the executor computes for that subnet (invariant 2)
// and what ONNX Runtime computes (invariant 3).
#include <c10/core/InferenceMode.h>

#include "autotailor/common/error.h"
#include "autotailor/exec/executor.h"
#include "autotailor/export/export.h"
#include "autotailor/import/onnx_import.h"
#include "autotailor/import/tensor_file.h"
#include "autotailor/supernet/supernet.h"
#include "test_util.h"

namespace autotailor {
namespace {

using supernet::Supernet;

at::Tensor load(const std::string& file) {
  return exec::tensor_from_const(read_tensor_file(test::fixture(file)));
}

Supernet build(const std::string& name) {
  return Supernet(import_onnx(test::fixture(name + ".onnx")), {}).reordered_by_importance();
}

class SupernetModel : public ::testing::TestWithParam<std::string> {};

TEST_P(SupernetModel, MaxSubnetReproducesPyTorch) {
  const std::string name = GetParam();
  Supernet s = build(name);
  EXPECT_GE(s.space().log10_size(), 5.0) << "a trivial search space";
  EXPECT_GE(s.space().elastic_groups(), 5);
  exec::Executor max(s.derive(supernet::max_subnet(s.space())));
  c10::InferenceMode guard;
  EXPECT_TRUE(test::all_close(max.run({load(name + ".in4.pb")})[0], load(name + ".out4.pb")));
}

TEST_P(SupernetModel, RandomSubnetsExportAndMatchOnnxRuntime) {
  const std::string name = GetParam();
  Supernet s = build(name);
  std::string dir = test::temp_dir("subnets_" + name);
  std::vector<std::string> files;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE("random:" + std::to_string(seed));
    supernet::SubnetConfig cfg = supernet::random_subnet(s.space(), seed);
    std::shared_ptr<const ir::Graph> sub = s.derive(cfg);
    ir::Shape shape = sub->tensor(sub->inputs[0]).shape;
    at::manual_seed(seed);
    at::Tensor x = at::randn(shape);
    at::Tensor want;
    {
      c10::InferenceMode guard;
      want = exec::Executor(sub).run({x})[0];
    }
    std::string file = dir + "/subnet" + std::to_string(seed) + ".onnx";
    export_subnet(s, cfg, file);
    files.push_back(file);
    {
      c10::InferenceMode guard;
      EXPECT_TRUE(test::all_close(exec::Executor(import_onnx(file)).run({x})[0], want))
          << "exported file vs executor";
    }
    at::Tensor ort = test::run_onnxruntime(file, x, dir);
    if (ort.defined()) {
      EXPECT_TRUE(test::all_close(ort, want)) << "ONNX Runtime vs executor";
    }
  }
  EXPECT_TRUE(test::python_onnx_checker(files));
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Torchvision, SupernetModel,
                         ::testing::Values("resnet18", "mobilenet_v2", "mobilenet_v3_small",
                                           "resnet50", "efficientnet_b0", "mobilenet_v3_large",
                                           "mnasnet0_5", "shufflenet_v2_x1_0", "regnet_x_400mf",
                                           "squeezenet1_0", "densenet121", "googlenet",
                                           "resnext50_32x4d"));

// The structure on known models (see docs/supernet.md for the worked examples).
TEST(SupernetStructure, ResNet18) {
  auto sp = supernet::analyze(*import_onnx(test::fixture("resnet18.onnx")));
  // 4 stage groups coupled by the residual adds, 8 block-internal ones.
  EXPECT_EQ(sp.elastic_groups(), 12);
  EXPECT_EQ(sp.blocks.size(), 5u);
  ASSERT_EQ(sp.stages.size(), 4u);
  EXPECT_EQ(sp.stages[0].blocks.size(), 2u);
  const supernet::WidthGroup* stage1 = sp.group("/conv1/Conv");
  ASSERT_NE(stage1, nullptr);
  EXPECT_EQ(stage1->choices, (std::vector<int64_t>{16, 32, 48, 64}));
  ASSERT_EQ(sp.kernels.size(), 1u);
  EXPECT_EQ(sp.kernels[0].choices, (std::vector<int64_t>{3, 5, 7}));
  EXPECT_EQ(sp.resolutions, (std::vector<int64_t>{112, 148, 188, 224}));
}

TEST(SupernetStructure, MobileNetV2) {
  auto sp = supernet::analyze(*import_onnx(test::fixture("mobilenet_v2.onnx")));
  // 16 expansion widths, 5 residual stages, and the stem, 16-, 320- and 1280-channel outputs.
  EXPECT_EQ(sp.elastic_groups(), 25);
  EXPECT_EQ(sp.blocks.size(), 10u);
  EXPECT_EQ(sp.stages.size(), 5u);
  EXPECT_TRUE(sp.kernels.empty());  // only 3x3 kernels
}

TEST(SupernetStructure, ChannelShuffleFixesResolutionButKeepsWidths) {
  auto sp = supernet::analyze(*import_onnx(test::fixture("shufflenet_v2_x1_0.onnx")));
  EXPECT_GE(sp.elastic_groups(), 10);
  EXPECT_EQ(sp.resolutions, std::vector<int64_t>{224});
  EXPECT_NE(sp.resolution_fixed_by.find("Reshape"), std::string::npos) << sp.resolution_fixed_by;
}

TEST(SupernetStructure, GroupedConvsShrinkEveryGroupAlike) {
  // ResNeXt-50 32x4d: the same 37 groups as ResNet-50; each bottleneck's two internal groups
  // are 32 chunks (the grouped conv's groups) of 4, 8, 16 or 32 channels.
  auto rx = supernet::analyze(*import_onnx(test::fixture("resnext50_32x4d.onnx")));
  EXPECT_EQ(rx.elastic_groups(), 37);
  const supernet::WidthGroup* g = rx.group("/layer1/layer1.0/conv1/Conv");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->chunks, 32);
  EXPECT_EQ(g->size, 4);
  EXPECT_EQ(g->choices, (std::vector<int64_t>{1, 2, 3, 4}));
  // RegNetX-400MF: stem, 4 stage groups, 2 x 22 internal groups of 2 to 25 chunks of 16.
  auto rg = supernet::analyze(*import_onnx(test::fixture("regnet_x_400mf.onnx")));
  EXPECT_EQ(rg.elastic_groups(), 49);
  EXPECT_EQ(rg.groups.size(), 51u);  // plus the model's input and output
}

TEST(SupernetFiles, SaveLoadAndSubnetJsonRoundTrip) {
  Supernet s = build("mobilenet_v3_small");
  std::string dir = test::temp_dir("supernet_rt");
  s.save(dir);
  Supernet back = Supernet::load(dir);
  EXPECT_EQ(supernet::space_to_json(back.space()), supernet::space_to_json(s.space()));
  for (uint64_t seed : {3u, 9u}) {
    auto cfg = supernet::random_subnet(s.space(), seed);
    auto text = supernet::subnet_to_json(cfg);
    EXPECT_EQ(supernet::subnet_from_json(text, "cfg", back.space()), cfg);
  }
  EXPECT_EQ(supernet::parse_subnet_spec("max", s.space()), supernet::max_subnet(s.space()));
  EXPECT_THROW(supernet::parse_subnet_spec("random:x", s.space()), Error);
  EXPECT_THROW(supernet::subnet_from_json(R"({"format":"autotailor-subnet","widths":{"nope":8}})",
                                          "cfg", s.space()),
               Error);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace autotailor
