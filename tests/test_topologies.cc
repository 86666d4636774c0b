// One small graph per hard topology (the way Torch-Pruning keeps a test per topology): the
// structure the analysis finds, and for random subnets the three invariants — the reordered
// max subnet computes the original function, the exported file computes what the executor
// computes for that subnet, and so does ONNX Runtime.
#include <c10/core/InferenceMode.h>

#include "autotailor/exec/executor.h"
#include "autotailor/export/export.h"
#include "autotailor/import/onnx_import.h"
#include "autotailor/supernet/supernet.h"
#include "model_builder.h"
#include "test_util.h"

namespace autotailor {
namespace {

using supernet::Supernet;

struct Built {
  std::shared_ptr<ir::Graph> graph;
  Supernet supernet;
};

Built build(const test::ModelBuilder& b, supernet::SpaceOptions o = {}) {
  o.width_multiple = 4;
  auto g = import_onnx_bytes(b.bytes(), "<topology>");
  return {g, Supernet(g, o).reordered_by_importance()};
}

const supernet::WidthGroup& group(const Supernet& s, const std::string& name) {
  const supernet::WidthGroup* w = s.space().group(name);
  if (!w) throw std::runtime_error("no group " + name);
  return *w;
}

// Invariants 1-3 over the max subnet and `n` random ones.
void check_invariants(const Built& b, int n = 8) {
  const Supernet& s = b.supernet;
  ir::Shape shape = b.graph->tensor(b.graph->inputs[0]).shape;
  at::manual_seed(1);
  at::Tensor x = at::randn(shape);
  {
    c10::InferenceMode guard;
    exec::Executor orig(b.graph), max(s.derive(supernet::max_subnet(s.space())));
    EXPECT_TRUE(test::all_close(max.run({x})[0], orig.run({x})[0])) << "invariant 1";
  }
  std::string dir = test::temp_dir("topology");
  std::vector<std::string> files;
  for (int seed = 1; seed <= n; ++seed) {
    SCOPED_TRACE("random:" + std::to_string(seed));
    auto cfg = supernet::random_subnet(s.space(), static_cast<uint64_t>(seed));
    auto sub = s.derive(cfg);
    at::Tensor xs = at::randn(sub->tensor(sub->inputs[0]).shape);
    std::string file = dir + "/s" + std::to_string(seed) + ".onnx";
    export_subnet(s, cfg, file);
    files.push_back(file);
    c10::InferenceMode guard;
    at::Tensor want = exec::Executor(sub).run({xs})[0];
    EXPECT_TRUE(test::all_close(exec::Executor(import_onnx(file)).run({xs})[0], want))
        << "invariant 2";
    at::Tensor ort = test::run_onnxruntime(file, xs, dir);
    if (ort.defined()) {
      EXPECT_TRUE(test::all_close(ort, want)) << "invariant 3";
    }
  }
  EXPECT_TRUE(test::python_onnx_checker(files));
  std::filesystem::remove_all(dir);
}

// A classifier head so that every test graph ends like a real one.
void head(test::ModelBuilder& b, const std::string& x, int64_t channels) {
  b.weight("fc_w", {10, channels}).weight("fc_b", {10});
  b.node("GlobalAveragePool", {x}, {"gap"});
  b.node("Flatten", {"gap"}, {"flat"});
  b.node("Gemm", {"flat", "fc_w", "fc_b"}, {"logits"}, {{"transB", {1}}}, "fc");
  b.output("logits", {1, 10});
}

TEST(Topology, TwoBranchConcat) {
  test::ModelBuilder b;
  b.input("x", {1, 3, 8, 8});
  b.weight("wa", {16, 3, 3, 3}).weight("wb", {24, 3, 1, 1}).weight("wc", {32, 40, 3, 3});
  b.node("Conv", {"x", "wa"}, {"a"}, {{"pads", {1, 1, 1, 1}}}, "conv_a");
  b.node("Conv", {"x", "wb"}, {"bb"}, {}, "conv_b");
  b.node("Concat", {"a", "bb"}, {"cat"}, {{"axis", {1}}});
  b.node("Conv", {"cat", "wc"}, {"c"}, {{"pads", {1, 1, 1, 1}}}, "conv_c");
  b.node("Relu", {"c"}, {"r"});
  head(b, "r", 32);
  Built t = build(b);
  EXPECT_TRUE(group(t.supernet, "conv_a").elastic());
  EXPECT_TRUE(group(t.supernet, "conv_b").elastic());
  EXPECT_TRUE(group(t.supernet, "conv_c").elastic());
  check_invariants(t);
}

TEST(Topology, SplitThenConcat) {
  // A split on the boundary of a concat keeps both parts elastic; a split inside one conv's
  // channels cuts them into two groups, each elastic.
  test::ModelBuilder b;
  b.input("x", {1, 3, 8, 8});
  b.weight("wa", {16, 3, 1, 1}).weight("wb", {8, 3, 1, 1}).weight("wp", {32, 24, 1, 1});
  b.weight("w1", {16, 16, 3, 3}).weight("w2", {16, 8, 3, 3}).ints("parts", {16, 8});
  b.weight("wq", {24, 3, 1, 1}).ints("halves", {12, 12}).weight("wr", {8, 12, 1, 1});
  b.node("Conv", {"x", "wa"}, {"a"}, {}, "conv_a");
  b.node("Conv", {"x", "wb"}, {"bb"}, {}, "conv_b");
  b.node("Concat", {"a", "bb"}, {"cat"}, {{"axis", {1}}});
  b.node("Split", {"cat", "parts"}, {"p1", "p2"}, {{"axis", {1}}});
  b.node("Conv", {"p1", "w1"}, {"q1"}, {{"pads", {1, 1, 1, 1}}});
  b.node("Conv", {"p2", "w2"}, {"q2"}, {{"pads", {1, 1, 1, 1}}});
  b.node("Conv", {"x", "wq"}, {"q"}, {}, "conv_q");
  b.node("Split", {"q", "halves"}, {"h1", "h2"}, {{"axis", {1}}}, "cut_inside");
  b.node("Conv", {"h1", "wr"}, {"r1"});
  b.node("Concat", {"q1", "q2", "r1", "h2"}, {"all"}, {{"axis", {1}}});
  b.weight("wz", {16, 52, 1, 1});
  b.node("Conv", {"all", "wz"}, {"z"});
  head(b, "z", 16);
  Built t = build(b);
  EXPECT_TRUE(group(t.supernet, "conv_a").elastic());
  EXPECT_TRUE(group(t.supernet, "conv_b").elastic());
  EXPECT_EQ(group(t.supernet, "conv_q").size, 12);
  EXPECT_TRUE(group(t.supernet, "conv_q").elastic());
  EXPECT_EQ(group(t.supernet, "conv_q#2").size, 12);
  EXPECT_TRUE(group(t.supernet, "conv_q#2").elastic());
  check_invariants(t);
}

// Derived subnet's node by name.
const ir::Node& node_named(const ir::Graph& g, const std::string& name) {
  for (const ir::Node& n : g.nodes)
    if (n.name == name) return n;
  throw std::runtime_error("no node " + name);
}

TEST(Topology, ChannelSliceMovesItsBounds) {
  // torch.chunk as exported: two Slices of one conv's channels, the second one's end past the
  // axis. Each half becomes its own group; a subnet moves the bounds to the kept channels.
  test::ModelBuilder b;
  b.input("x", {1, 3, 8, 8});
  b.weight("w0", {16, 3, 1, 1}).weight("wa", {8, 8, 3, 3}).weight("wb", {8, 8, 1, 1});
  b.weight("w1", {12, 16, 1, 1});
  b.ints("s0", {0}).ints("e0", {8}).ints("s1", {8}).ints("e1", {INT64_MAX}).ints("ax", {1});
  b.node("Conv", {"x", "w0"}, {"c0"}, {}, "before");
  b.node("Slice", {"c0", "s0", "e0", "ax"}, {"lo"}, {}, "lower");
  b.node("Slice", {"c0", "s1", "e1", "ax"}, {"hi"}, {}, "upper");
  b.node("Conv", {"lo", "wa"}, {"a"}, {{"pads", {1, 1, 1, 1}}}, "conv_a");
  b.node("Conv", {"hi", "wb"}, {"bb"}, {}, "conv_b");
  b.node("Concat", {"a", "bb"}, {"cat"}, {{"axis", {1}}});
  b.node("Conv", {"cat", "w1"}, {"c1"}, {}, "after");
  head(b, "c1", 12);
  Built t = build(b);
  EXPECT_TRUE(group(t.supernet, "before").elastic());
  EXPECT_TRUE(group(t.supernet, "before#2").elastic());
  supernet::SubnetConfig c = supernet::max_subnet(t.supernet.space());
  c.widths["before"] = 4;  // the upper half now starts at channel 4
  auto g = t.supernet.derive(c);
  EXPECT_EQ(g->tensor(node_named(*g, "lower").outputs[0]).shape[1], 4);
  EXPECT_EQ(g->tensor(node_named(*g, "upper").outputs[0]).shape[1], 8);
  check_invariants(t);
}

TEST(Topology, ChannelShuffleMapsChannelIndices) {
  // Reshape [N, 2, 8, H, W] -> Transpose -> Reshape [N, 16, H, W]: output channel 2i + j is
  // channel i of chunk j. Both chunks shrink alike (one group, two chunks); after the shuffle
  // each kept channel spans 2 positions, and the Reshape targets follow the kept width.
  test::ModelBuilder b;
  b.input("x", {1, 3, 8, 8});
  b.weight("w0", {16, 3, 1, 1}).weight("w1", {16, 16, 1, 1});
  b.ints("grouped", {1, 2, 8, 8, 8}).ints("ungrouped", {1, 16, 8, 8});
  b.node("Conv", {"x", "w0"}, {"c0"}, {}, "before");
  b.node("Reshape", {"c0", "grouped"}, {"g"});
  b.node("Transpose", {"g"}, {"t"}, {{"perm", {0, 2, 1, 3, 4}}});
  b.node("Reshape", {"t", "ungrouped"}, {"s"}, {}, "unshuffle");
  b.node("Conv", {"s", "w1"}, {"c1"}, {}, "after");
  head(b, "c1", 16);
  Built t = build(b);
  const auto& before = group(t.supernet, "before");
  EXPECT_TRUE(before.elastic());
  EXPECT_EQ(before.chunks, 2);
  EXPECT_EQ(before.size, 8);
  EXPECT_TRUE(group(t.supernet, "after").elastic());
  // The shuffle's Reshape reads spatial positions: resolution stays fixed.
  EXPECT_NE(t.supernet.space().resolution_fixed_by.find("Reshape"), std::string::npos);
  supernet::SubnetConfig c = supernet::max_subnet(t.supernet.space());
  c.widths["before"] = 4;
  auto g = t.supernet.derive(c);
  EXPECT_EQ(g->tensor(node_named(*g, "unshuffle").outputs[0]).shape[1], 8);
  check_invariants(t);
}

TEST(Topology, ShuffleUnitWithGroupedPointwiseConvs) {
  // ShuffleNet v1's unit: grouped 1x1 conv, BN, shuffle, 3x3 depthwise, grouped 1x1 conv,
  // residual add.
  test::ModelBuilder b;
  b.input("x", {1, 3, 8, 8});
  b.weight("w0", {16, 3, 3, 3}).weight("g1", {16, 8, 1, 1}).weight("dw", {16, 1, 3, 3});
  b.weight("g2", {16, 8, 1, 1});
  b.weight("bn_s", {16})
      .weight("bn_b", {16})
      .weight("bn_m", {16})
      .weight("bn_v", {16}, std::vector<float>(16, 1.0f));
  b.ints("grouped", {1, 2, 8, 8, 8}).ints("ungrouped", {1, 16, 8, 8});
  b.node("Conv", {"x", "w0"}, {"s0"}, {{"pads", {1, 1, 1, 1}}}, "stem");
  b.node("Conv", {"s0", "g1"}, {"a"}, {{"group", {2}}}, "gconv1");
  b.node("BatchNormalization", {"a", "bn_s", "bn_b", "bn_m", "bn_v"}, {"an"});
  b.node("Relu", {"an"}, {"ar"});
  b.node("Reshape", {"ar", "grouped"}, {"g"});
  b.node("Transpose", {"g"}, {"t"}, {{"perm", {0, 2, 1, 3, 4}}});
  b.node("Reshape", {"t", "ungrouped"}, {"sh"});
  b.node("Conv", {"sh", "dw"}, {"d"}, {{"pads", {1, 1, 1, 1}}, {"group", {16}}}, "depthwise");
  b.node("Conv", {"d", "g2"}, {"e"}, {{"group", {2}}}, "gconv2");
  b.node("Add", {"e", "s0"}, {"y"}, {}, "residual");
  head(b, "y", 16);
  Built t = build(b);
  EXPECT_TRUE(group(t.supernet, "gconv1").elastic());
  EXPECT_TRUE(group(t.supernet, "stem").elastic());
  check_invariants(t);
}
TEST(Topology, SqueezeExcitation) {
  test::ModelBuilder b;
  b.input("x", {1, 3, 8, 8});
  b.weight("w0", {24, 3, 3, 3}).weight("wsq", {8, 24, 1, 1}).weight("wex", {24, 8, 1, 1});
  b.weight("w1", {16, 24, 1, 1});
  b.node("Conv", {"x", "w0"}, {"c0"}, {{"pads", {1, 1, 1, 1}}}, "main");
  b.node("GlobalAveragePool", {"c0"}, {"pool"});
  b.node("Conv", {"pool", "wsq"}, {"sq"}, {}, "squeeze");
  b.node("Relu", {"sq"}, {"sqr"});
  b.node("Conv", {"sqr", "wex"}, {"ex"}, {}, "expand");
  b.node("Sigmoid", {"ex"}, {"scale"});
  b.node("Mul", {"c0", "scale"}, {"scaled"});
  b.node("Conv", {"scaled", "w1"}, {"c1"}, {}, "proj");
  head(b, "c1", 16);
  Built t = build(b);
  const auto& main = group(t.supernet, "main");
  EXPECT_TRUE(main.elastic());
  // The expanding conv's channels are the ones it scales: one group.
  EXPECT_NE(std::find(main.producers.begin(), main.producers.end(), "expand"),
            main.producers.end());
  EXPECT_TRUE(group(t.supernet, "squeeze").elastic());
  check_invariants(t);
}

TEST(Topology, DepthwiseChain) {
  test::ModelBuilder b;
  b.input("x", {1, 3, 8, 8});
  b.weight("w0", {16, 3, 1, 1}).weight("dw1", {16, 1, 3, 3}).weight("dw2", {16, 1, 5, 5});
  b.weight("pw", {24, 16, 1, 1});
  b.node("Conv", {"x", "w0"}, {"c0"}, {}, "expand");
  b.node("Conv", {"c0", "dw1"}, {"d1"}, {{"pads", {1, 1, 1, 1}}, {"group", {16}}}, "dw1_node");
  b.node("Conv", {"d1", "dw2"}, {"d2"}, {{"pads", {2, 2, 2, 2}}, {"group", {16}}}, "dw2_node");
  b.node("Conv", {"d2", "pw"}, {"p"}, {}, "pointwise");
  head(b, "p", 24);
  Built t = build(b);
  const auto& g = group(t.supernet, "expand");
  EXPECT_TRUE(g.elastic());
  EXPECT_EQ(g.producers.size(), 1u) << "depthwise convs pass the channels through";
  ASSERT_NE(t.supernet.space().kernel("dw2_node"), nullptr);  // 5x5: kernel choices 3, 5
  check_invariants(t);
}

TEST(Topology, GroupedConvShrinksEveryGroupAlike) {
  // group 4: the producer's 16 channels are 4 chunks of 4, the grouped conv's 32 outputs 4
  // chunks of 8. A subnet keeps the same channels of every chunk and the group count.
  test::ModelBuilder b;
  b.input("x", {1, 3, 8, 8});
  b.weight("w0", {16, 3, 1, 1}).weight("wg", {32, 4, 3, 3}).weight("w1", {16, 32, 1, 1});
  b.node("Conv", {"x", "w0"}, {"c0"}, {}, "before");
  b.node("Conv", {"c0", "wg"}, {"g"}, {{"pads", {1, 1, 1, 1}}, {"group", {4}}}, "grouped");
  b.node("Conv", {"g", "w1"}, {"c1"}, {}, "after");
  head(b, "c1", 16);
  Built t = build(b);
  const auto& before = group(t.supernet, "before");
  EXPECT_TRUE(before.elastic());
  EXPECT_EQ(before.size, 4);
  EXPECT_EQ(before.chunks, 4);
  // Multiple 4 over 4 chunks: each chunk rounds to 1 channel.
  EXPECT_EQ(before.choices, (std::vector<int64_t>{1, 2, 3, 4}));
  const auto& grouped = group(t.supernet, "grouped");
  EXPECT_TRUE(grouped.elastic());
  EXPECT_EQ(grouped.chunks, 4);
  EXPECT_EQ(grouped.choices, (std::vector<int64_t>{2, 4, 6, 8}));
  EXPECT_TRUE(group(t.supernet, "after").elastic());
  supernet::SubnetConfig c = supernet::max_subnet(t.supernet.space());
  c.widths["before"] = 2;
  c.widths["grouped"] = 6;
  auto g = t.supernet.derive(c);
  const ir::Node& n = node_named(*g, "grouped");
  EXPECT_EQ(n.attr_int("group", 1), 4);
  EXPECT_EQ(g->tensor(n.inputs[1]).shape, (ir::Shape{24, 2, 3, 3}));
  check_invariants(t);
}

TEST(Topology, DepthwiseWithChannelMultiplier) {
  // group = C_in = 8, C_out = 16: each input channel feeds 2 consecutive outputs.
  test::ModelBuilder b;
  b.input("x", {1, 3, 8, 8});
  b.weight("w0", {8, 3, 1, 1}).weight("dw", {16, 1, 3, 3}).weight("w1", {12, 16, 1, 1});
  b.node("Conv", {"x", "w0"}, {"c0"}, {}, "before");
  b.node("Conv", {"c0", "dw"}, {"d"}, {{"pads", {1, 1, 1, 1}}, {"group", {8}}}, "depthwise");
  b.node("Conv", {"d", "w1"}, {"c1"}, {}, "after");
  head(b, "c1", 12);
  Built t = build(b);
  EXPECT_TRUE(group(t.supernet, "before").elastic());
  supernet::SubnetConfig c = supernet::max_subnet(t.supernet.space());
  c.widths["before"] = 4;
  auto g = t.supernet.derive(c);
  const ir::Node& n = node_named(*g, "depthwise");
  EXPECT_EQ(n.attr_int("group", 1), 4);
  EXPECT_EQ(g->tensor(n.outputs[0]).shape[1], 8);
  check_invariants(t);
}

TEST(Topology, ResidualIdentityAndProjectionShortcuts) {
  test::ModelBuilder b;
  b.input("x", {1, 3, 8, 8});
  b.weight("w0", {16, 3, 3, 3}).weight("a1", {16, 16, 3, 3}).weight("a2", {16, 16, 3, 3});
  b.weight("b1", {32, 16, 3, 3}).weight("b2", {32, 32, 3, 3}).weight("bp", {32, 16, 1, 1});
  b.node("Conv", {"x", "w0"}, {"s0"}, {{"pads", {1, 1, 1, 1}}}, "stem");
  b.node("Conv", {"s0", "a1"}, {"ya"}, {{"pads", {1, 1, 1, 1}}});
  b.node("Relu", {"ya"}, {"yar"});
  b.node("Conv", {"yar", "a2"}, {"yb"}, {{"pads", {1, 1, 1, 1}}});
  b.node("Add", {"yb", "s0"}, {"s1"}, {}, "identity_add");
  b.node("Conv", {"s1", "b1"}, {"za"}, {{"pads", {1, 1, 1, 1}}, {"strides", {2, 2}}});
  b.node("Relu", {"za"}, {"zar"});
  b.node("Conv", {"zar", "b2"}, {"zb"}, {{"pads", {1, 1, 1, 1}}});
  b.node("Conv", {"s1", "bp"}, {"proj"}, {{"strides", {2, 2}}});
  b.node("Add", {"zb", "proj"}, {"s2"}, {}, "projection_add");
  head(b, "s2", 32);
  Built t = build(b);
  const auto& sp = t.supernet.space();
  ASSERT_EQ(sp.blocks.size(), 1u);
  EXPECT_EQ(sp.blocks[0].name, "identity_add");
  ASSERT_EQ(sp.stages.size(), 1u);
  EXPECT_EQ(sp.stages[0].choices, (std::vector<int64_t>{0, 1}));
  // The identity add ties the stem to the block's output conv.
  EXPECT_GE(group(t.supernet, "stem").producers.size(), 2u);
  check_invariants(t);
}

TEST(Topology, OneOutputChannelConvIsNotDepthwise) {
  test::ModelBuilder b;
  b.input("x", {1, 1, 8, 8});
  b.weight("w0", {1, 1, 3, 3}).weight("w1", {16, 1, 3, 3}).weight("w2", {8, 16, 1, 1});
  b.node("Conv", {"x", "w0"}, {"c0"}, {{"pads", {1, 1, 1, 1}}}, "single");
  b.node("Conv", {"c0", "w1"}, {"c1"}, {{"pads", {1, 1, 1, 1}}}, "from_one");
  b.node("Conv", {"c1", "w2"}, {"c2"}, {}, "last");
  head(b, "c2", 8);
  Built t = build(b);
  EXPECT_FALSE(group(t.supernet, "single").elastic());   // one channel: nothing to shrink
  EXPECT_TRUE(group(t.supernet, "from_one").elastic());  // Cin = 1, group = 1: a plain conv
  check_invariants(t);
}

TEST(Topology, UnknownOpInTheMiddleFreezesOnlyItsChannels) {
  test::ModelBuilder b;
  b.input("x", {1, 3, 8, 8});
  b.weight("w0", {16, 3, 1, 1}).weight("w1", {16, 16, 3, 3}).weight("w2", {8, 16, 1, 1});
  b.node("Conv", {"x", "w0"}, {"c0"}, {}, "first");
  // LRN mixes neighbouring channels: no channel rule, so its channels are frozen.
  auto& lrn = b.node("LRN", {"c0"}, {"n"}, {{"size", {3}}});
  (void)lrn;
  b.node("Conv", {"n", "w1"}, {"c1"}, {{"pads", {1, 1, 1, 1}}}, "second");
  b.node("Relu", {"c1"}, {"r1"});
  b.node("Conv", {"r1", "w2"}, {"c2"}, {}, "third");
  head(b, "c2", 8);
  Built t = build(b);
  EXPECT_FALSE(group(t.supernet, "first").elastic());
  EXPECT_NE(group(t.supernet, "first").frozen_by.find("LRN"), std::string::npos);
  EXPECT_TRUE(group(t.supernet, "second").elastic());
  check_invariants(t);
}

}  // namespace
}  // namespace autotailor
