// Invariant 1 on real architectures: torchvision classifiers exported by PyTorch, run by the
// executor at batch 1 and 4, against PyTorch's own outputs — through the fused oneDNN inference
// path and through the autograd-capable path the trainer uses.
#include <c10/core/InferenceMode.h>

#include "autotailor/exec/executor.h"
#include "autotailor/import/onnx_import.h"
#include "autotailor/import/tensor_file.h"
#include "test_util.h"

namespace autotailor {
namespace {

class RealModel : public ::testing::TestWithParam<std::string> {};

at::Tensor load(const std::string& file) {
  return exec::tensor_from_const(read_tensor_file(test::fixture(file)));
}

TEST_P(RealModel, MatchesPyTorchAtBatch1And4) {
  const std::string name = GetParam();
  std::shared_ptr<const ir::Graph> g = import_onnx(test::fixture(name + ".onnx"));
  exec::Executor fast(g);
  exec::Executor plain(g, exec::ExecOptions{true, nullptr});
  EXPECT_LT(fast.step_count(), g->nodes.size()) << "no element-wise op was fused";
  for (int batch : {1, 4}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    at::Tensor x = load(name + ".in" + std::to_string(batch) + ".pb");
    at::Tensor want = load(name + ".out" + std::to_string(batch) + ".pb");
    ASSERT_EQ(x.size(0), batch);
    at::Tensor got = fast.run({x}).at(0);
    EXPECT_TRUE(test::all_close(got, want)) << "fused inference path";
    at::NoGradGuard no_grad;
    EXPECT_TRUE(test::all_close(plain.run({x}).at(0), want)) << "autograd path";
  }
}

TEST_P(RealModel, ImportFoldsIdentityAndConstants) {
  auto g = import_onnx(test::fixture(GetParam() + ".onnx"));
  for (const ir::Node& n : g->nodes) {
    EXPECT_NE(n.op_type, "Identity") << n.name;
    EXPECT_NE(n.op_type, "Constant") << n.name;
    for (int o : n.outputs) EXPECT_TRUE(g->tensor(o).shape_known) << g->tensor(o).name;
  }
  EXPECT_GT(g->parameter_count(), 1'000'000);
}

INSTANTIATE_TEST_SUITE_P(Torchvision, RealModel,
                         ::testing::Values("resnet18", "mobilenet_v2", "mobilenet_v3_small",
                                           "resnet50", "efficientnet_b0"));

}  // namespace
}  // namespace autotailor
