// TailorIR, the importer's folding and the executor's fusion, on small graphs built in code.
#include <c10/core/InferenceMode.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "autotailor/common/error.h"
#include "autotailor/exec/executor.h"
#include "autotailor/import/onnx_import.h"
#include "autotailor/ir/dump.h"
#include "autotailor/supernet/supernet.h"
#include "model_builder.h"
#include "test_util.h"

namespace autotailor {
namespace {

std::shared_ptr<ir::Graph> import(const test::ModelBuilder& b) {
  return import_onnx_bytes(b.bytes(), "<test>");
}

int count_op(const ir::Graph& g, const std::string& op) {
  return static_cast<int>(std::count_if(g.nodes.begin(), g.nodes.end(),
                                        [&](const ir::Node& n) { return n.op_type == op; }));
}

TEST(Import, FoldsShapeChainsIdentityAndConstants) {
  test::ModelBuilder b;
  b.input("x", {-1, 3, 8, 8}).output("out", {-1, 256});
  b.weight("w", {4, 3, 3, 3}).ints("zero", {0}).ints("minus_one", {-1}).ints("axes", {0});
  b.node("Conv", {"x", "w"}, {"y"}, {{"pads", {1, 1, 1, 1}}});
  b.node("Shape", {"y"}, {"s"});
  b.node("Gather", {"s", "zero"}, {"n"}, {{"axis", {0}}});
  b.node("Concat", {"n", "minus_one"}, {"shape"}, {{"axis", {0}}});
  b.node("Reshape", {"y", "shape"}, {"r"});
  b.node("Identity", {"r"}, {"out"});
  auto g = import(b);
  EXPECT_TRUE(g->symbolic_batch);
  ASSERT_EQ(g->nodes.size(), 3u) << ir::dump_text(*g);  // Conv, Reshape, Identity (graph output)
  EXPECT_EQ(count_op(*g, "Shape"), 0);
  const ir::Node& reshape = g->nodes[1];
  ASSERT_EQ(reshape.op_type, "Reshape");
  ASSERT_TRUE(g->tensor(reshape.inputs[1]).is_const());
  EXPECT_EQ(g->tensor(reshape.inputs[1]).value->to_int64(), (std::vector<int64_t>{1, -1}));
  EXPECT_EQ(g->tensor(g->outputs[0]).shape, (ir::Shape{1, 256}));

  // The folded batch of 1 follows the real batch at run time.
  exec::Executor ex(g);
  at::Tensor x = at::randn({3, 3, 8, 8});
  at::Tensor y = ex.run({x})[0];
  at::Tensor w = ex.constant(g->find("w"));
  EXPECT_TRUE(test::all_close(y, at::conv2d(x, w, {}, 1, 1).reshape({3, -1})));
}

TEST(Import, RefusesDynamicSpatialDimensions) {
  test::ModelBuilder b;
  b.input("x", {1, 3, -2, 8}).output("y");
  b.node("Relu", {"x"}, {"y"});
  try {
    import(b);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dynamic dimension 2"), std::string::npos) << e.what();
  }
}

// Models on which libonnx 1.12's own shape inference reads out of bounds (found by fuzzing and
// by reading its sources; docs/hardening.md): the importer refuses each, naming the problem,
// before libonnx's inference function for that node runs. The checks see the live inference
// context, so a bad rank produced inside the graph (the Reshape case) is caught too.
TEST(Import, RefusesModelsLibonnxWouldMisread) {
  struct Case {
    const char* what;
    std::function<void(test::ModelBuilder&)> build;
    int64_t opset;
    const char* expect;
  };
  std::vector<Case> cases = {
      {"RNN-1 with a rank-1 X (fuzzer)",
       [](test::ModelBuilder& b) {
         b.input("x", {2}).weight("w", {1, 5, 3}).weight("r", {1, 5, 5}).output("y");
         test::ModelBuilder::attr_int(b.node("RNN", {"x", "w", "r"}, {"", "y"}), "hidden_size", 5);
       },
       5, "RNN needs rank 3"},
      {"RNN-1 fed a rank-1 tensor made inside the graph",
       [](test::ModelBuilder& b) {
         b.input("x", {2, 1, 3}).ints("shape", {6}).weight("w", {1, 5, 3}).weight("r", {1, 5, 5});
         b.output("y");
         b.node("Reshape", {"x", "shape"}, {"flat"});
         test::ModelBuilder::attr_int(b.node("RNN", {"flat", "w", "r"}, {"", "y"}), "hidden_size",
                                      5);
       },
       5, "input 0 (X) has rank 1"},
      {"Gemm-6 with a rank-1 A",
       [](test::ModelBuilder& b) {
         b.input("a", {4}).weight("b", {4, 3}).weight("c", {3}).output("y");
         b.node("Gemm", {"a", "b", "c"}, {"y"});
       },
       6, "Gemm needs rank 2"},
      {"LayerNormalization of a scalar",
       [](test::ModelBuilder& b) {
         b.input("x", {}).weight("s", {1}).output("y").output("mean");
         b.node("LayerNormalization", {"x", "s"}, {"y", "mean"});
       },
       17, "is a scalar"},
      {"Conv with a rank-3 X and a rank-4 W",
       [](test::ModelBuilder& b) {
         b.input("x", {1, 3, 8}).weight("w", {4, 3, 3, 3}).output("y");
         b.node("Conv", {"x", "w"}, {"y"});
       },
       13, "X has rank 3 but W has rank 4"},
      {"an initializer shorter than its dims",
       [](test::ModelBuilder& b) {
         b.input("x", {1, 4}).weight("w", {4, 2}).output("y");
         b.proto().mutable_graph()->mutable_initializer(0)->mutable_raw_data()->resize(7);
         b.node("MatMul", {"x", "w"}, {"y"});
       },
       13, "holds 7 bytes of raw data"},
      {"Einsum with an upper-case term and no output",
       [](test::ModelBuilder& b) {
         b.input("x", {2, 2}).output("y");
         test::ModelBuilder::attr_string(b.node("Einsum", {"x"}, {"y"}), "equation", "Ab");
       },
       12, "equation 'Ab'"},
      {"GatherND with negative batch_dims",
       [](test::ModelBuilder& b) {
         b.input("x", {2, 3}).ints("i", {0}).output("y");
         test::ModelBuilder::attr_int(b.node("GatherND", {"x", "i"}, {"y"}), "batch_dims", -1);
       },
       12, "batch_dims is -1"},
      {"an initializer with an empty name",
       [](test::ModelBuilder& b) {
         b.input("x", {1, 4}).weight("", {4}).output("y");
         b.node("Relu", {"x"}, {"y"});
       },
       13, "initializer with an empty name"},
  };
  for (const Case& c : cases) {
    test::ModelBuilder b(c.opset);
    c.build(b);
    try {
      import_onnx_bytes(b.raw_bytes(), "<test>");
      ADD_FAILURE() << c.what << ": expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos)
          << c.what << ": " << e.what();
    }
  }
}

TEST(Graph, RelinkSortsTopologicallyAndDropsDeadNodes) {
  ir::Graph g;
  for (const char* name : {"a", "b", "c", "dead"}) {
    ir::Tensor t;
    t.name = name;
    g.add_tensor(t);
  }
  g.inputs = {0};
  g.outputs = {2};
  g.nodes.push_back({"second", "Relu", "", {1}, {2}, {}});
  g.nodes.push_back({"first", "Relu", "", {0}, {1}, {}});
  g.nodes.push_back({"unused", "Relu", "", {0}, {3}, {}});
  g.relink();
  ASSERT_EQ(g.nodes.size(), 2u);
  EXPECT_EQ(g.nodes[0].name, "first");
  EXPECT_EQ(g.nodes[1].name, "second");
  EXPECT_EQ(g.tensor(1).producer, 0);
  EXPECT_EQ(g.tensor(1).consumers, std::vector<int>{1});
  g.compact();
  EXPECT_EQ(g.tensors.size(), 3u);
  EXPECT_EQ(g.find("dead"), -1);
}

// A graph run through the fused oneDNN path equals the unfused LibTorch path.
void expect_fused_equals_plain(const test::ModelBuilder& b, size_t expected_steps,
                               std::vector<int64_t> shape) {
  auto g = import(b);
  exec::Executor fused(g);
  exec::Executor plain(g, exec::ExecOptions{true, nullptr});
  EXPECT_EQ(fused.step_count(), expected_steps) << ir::dump_text(*g);
  for (int64_t batch : {1, 2}) {
    shape[0] = batch;
    at::Tensor x = at::randn(shape);
    at::Tensor want;
    {
      at::NoGradGuard ng;
      want = plain.run({x})[0];
    }
    EXPECT_TRUE(test::all_close(fused.run({x})[0], want));
  }
}

TEST(Fusion, ConvAddReluIntoOneStep) {
  test::ModelBuilder b;
  b.input("x", {1, 8, 10, 10}).output("out");
  b.weight("w1", {8, 8, 3, 3}).weight("b1", {8}).weight("w2", {8, 8, 1, 1});
  b.node("Conv", {"x", "w1", "b1"}, {"c1"}, {{"pads", {1, 1, 1, 1}}});
  b.node("Relu", {"c1"}, {"r1"});
  b.node("Conv", {"r1", "w2"}, {"c2"});
  b.node("Add", {"c2", "x"}, {"s"});
  b.node("Relu", {"s"}, {"out"});
  expect_fused_equals_plain(b, 2, {1, 8, 10, 10});
}

// A Conv followed by 33 Relus (17 worked, 33 failed "could not append an elementwise
// post-op"): the first 15 fold into the conv, the rest run as steps of their own.
TEST(Fusion, LongElementwiseChainsSplitAtThePostOpLimit) {
  test::ModelBuilder b;
  b.input("x", {1, 4, 6, 6}).output("r33");
  b.weight("w", {4, 4, 3, 3});
  b.node("Conv", {"x", "w"}, {"r0"}, {{"pads", {1, 1, 1, 1}}});
  for (int i = 0; i < 33; ++i) b.node("Relu", {fmt::format("r{}", i)}, {fmt::format("r{}", i + 1)});
  expect_fused_equals_plain(b, 1 + 33 - 15, {1, 4, 6, 6});
}

TEST(Fusion, ClipHardSwishHardSigmoidAndDepthwise) {
  test::ModelBuilder b(14);  // HardSwish arrived in opset 14
  b.input("x", {1, 6, 9, 9}).output("out", {1, 6, 5, 5});
  b.weight("w1", {12, 6, 1, 1}).weight("w2", {12, 1, 3, 3}).weight("w3", {6, 12, 1, 1});
  b.weight("lo", {}, {0.0f}).weight("hi", {}, {6.0f});
  b.node("Conv", {"x", "w1"}, {"c1"});
  b.node("Clip", {"c1", "lo", "hi"}, {"r1"});
  b.node("Conv", {"r1", "w2"}, {"c2"},
         {{"pads", {1, 1, 1, 1}}, {"group", {12}}, {"strides", {2, 2}}});
  b.node("HardSwish", {"c2"}, {"r2"});
  b.node("Conv", {"r2", "w3"}, {"c3"});
  auto& hs = b.node("HardSigmoid", {"c3"}, {"out"});
  test::ModelBuilder::attr_float(hs, "alpha", 0.25f);
  expect_fused_equals_plain(b, 3, {1, 6, 9, 9});
}

TEST(Fusion, AsymmetricAutoPadAndDilation) {
  test::ModelBuilder b(11);
  b.input("x", {1, 4, 11, 11}).output("out");
  b.weight("w1", {4, 4, 4, 4}).weight("w2", {5, 4, 3, 3});
  auto& c1 = b.node("Conv", {"x", "w1"}, {"c1"}, {{"strides", {2, 2}}});
  auto* a = c1.add_attribute();
  a->set_name("auto_pad");
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s("SAME_UPPER");
  b.node("Conv", {"c1", "w2"}, {"out"}, {{"dilations", {2, 2}}, {"pads", {2, 1, 2, 1}}});
  expect_fused_equals_plain(b, 2, {1, 4, 11, 11});
}

TEST(Fusion, ResidualAddUsedTwiceIsNotOverwritten) {
  // x feeds both the conv and the Add, and is also a graph output: the Sum must copy it.
  test::ModelBuilder b;
  b.input("x", {1, 4, 6, 6}).output("out").output("mid");
  b.weight("w0", {4, 4, 1, 1}).weight("w1", {4, 4, 1, 1});
  b.node("Conv", {"x", "w0"}, {"mid"});
  b.node("Conv", {"mid", "w1"}, {"c"});
  b.node("Add", {"c", "mid"}, {"out"});
  auto g = import(b);
  exec::Executor fused(g);
  exec::Executor plain(g, exec::ExecOptions{true, nullptr});
  at::Tensor x = at::randn({1, 4, 6, 6});
  auto got = fused.run({x});
  at::NoGradGuard ng;
  auto want = plain.run({x});
  EXPECT_TRUE(test::all_close(got[0], want[0]));
  EXPECT_TRUE(test::all_close(got[1], want[1]));
}

// In-place kernels must not write through views: Reshape and Expand outputs share memory with
// their inputs, which are still needed (and one is the caller's input).
TEST(Executor, NoInPlaceWritesThroughViews) {
  test::ModelBuilder b;
  b.input("x", {1, 4, 3, 3}).output("y", {1, 4, 3, 3});
  b.ints("flat", {1, 36}).ints("back", {1, 4, 3, 3});
  b.node("Reshape", {"x", "flat"}, {"f"});
  b.node("Relu", {"f"}, {"r"});
  b.node("Reshape", {"r", "back"}, {"rb"});
  b.node("Add", {"rb", "x"}, {"y"});
  auto g = import(b);
  exec::Executor ex(g);
  at::Tensor x = at::randn({1, 4, 3, 3});
  at::Tensor keep = x.clone();
  at::Tensor y = ex.run({x})[0];
  EXPECT_TRUE(at::equal(x, keep)) << "the caller's input was modified";
  EXPECT_TRUE(test::all_close(y, at::relu(keep) + keep));

  test::ModelBuilder e;
  e.input("x", {1, 4, 1, 1}).output("y", {1, 4, 3, 3});
  e.ints("shape", {1, 4, 3, 3});
  e.weight("c", {1, 4, 3, 3});
  e.node("Expand", {"x", "shape"}, {"big"});
  e.node("Add", {"big", "c"}, {"y"});
  auto ge = import(e);
  exec::Executor ee(ge);
  at::Tensor xe = at::randn({1, 4, 1, 1});
  EXPECT_TRUE(test::all_close(ee.run({xe})[0], xe + ee.constant(ge->find("c"))));
}

// A Split that cuts inside one conv's channels freezes that space and gives its two halves
// their own (uniquely named) groups; deriving the max subnet must not confuse them.
TEST(Supernet, SplitInsideOneSpaceAndSharedConstants) {
  test::ModelBuilder b;
  b.input("x", {1, 3, 8, 8}).output("y");
  b.weight("w0", {24, 3, 3, 3}).weight("wa", {16, 16, 1, 1}).weight("wb", {16, 8, 1, 1});
  b.weight("wa2", {8, 16, 1, 1}).weight("wb2", {8, 16, 1, 1});
  b.weight("zero", {16}, std::vector<float>(16, 0.0f));  // one bias shared by two convs
  b.node("Conv", {"x", "w0"}, {"c0"}, {{"pads", {1, 1, 1, 1}}});
  b.ints("sizes", {16, 8});
  b.node("Split", {"c0", "sizes"}, {"s1", "s2"}, {{"axis", {1}}}, "split");
  b.node("Conv", {"s1", "wa", "zero"}, {"a"}, {}, "conv_a");
  b.node("Conv", {"s2", "wb", "zero"}, {"bb"}, {}, "conv_b");
  b.node("Conv", {"a", "wa2"}, {"a2"});
  b.node("Conv", {"bb", "wb2"}, {"b2"});
  b.node("Concat", {"a2", "b2"}, {"y"}, {{"axis", {1}}});
  auto g = import(b);
  supernet::Supernet s(g, {});
  std::set<std::string> names;
  for (const auto& w : s.space().groups) EXPECT_TRUE(names.insert(w.name).second) << w.name;
  // The shared zero bias ties neither conv to the other: two independent elastic groups.
  for (const char* conv : {"conv_a", "conv_b"}) {
    const supernet::WidthGroup* w = s.space().group(conv);
    ASSERT_NE(w, nullptr) << conv;
    EXPECT_TRUE(w->elastic()) << conv << ": " << w->frozen_by;
    EXPECT_EQ(w->producers.size(), 1u) << conv;
  }
  exec::Executor orig(g), max(s.derive(supernet::max_subnet(s.space())));
  at::Tensor x = at::randn({1, 3, 8, 8});
  EXPECT_TRUE(test::all_close(max.run({x})[0], orig.run({x})[0]));
  exec::Executor min(s.derive(supernet::min_subnet(s.space())));
  EXPECT_EQ(min.run({x})[0].size(1), 16);  // the output channels never change
}

TEST(Dump, TextJsonAndDot) {
  test::ModelBuilder b;
  b.input("x", {1, 3, 8, 8}).output("y");
  b.weight("w", {4, 3, 3, 3});
  b.node("Conv", {"x", "w"}, {"c"}, {{"pads", {1, 1, 1, 1}}}, "conv_a");
  b.node("Relu", {"c"}, {"y"}, {}, "relu_b");
  auto g = import(b);
  std::string text = ir::dump_text(*g);
  EXPECT_NE(text.find("conv_a"), std::string::npos);
  EXPECT_NE(text.find("c[1x4x8x8]"), std::string::npos);
  auto j = nlohmann::json::parse(ir::dump_json(*g));
  EXPECT_EQ(j["graph"]["nodes"].size(), 2u);
  EXPECT_EQ(j["stats"]["macs"], 4 * 8 * 8 * 3 * 3 * 3);
  EXPECT_EQ(j["stats"]["parameters"], 4 * 3 * 3 * 3);
  std::string dot = ir::dump_dot(*g, {"conv_a"});
  EXPECT_NE(dot.find("fillcolor"), std::string::npos);
  EXPECT_NE(dot.find("\"n0\" -> \"n1\""), std::string::npos);
}

}  // namespace
}  // namespace autotailor
