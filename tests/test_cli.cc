// The command-line contract and bad input: every failure is one line on stderr naming the
// problem, a non-zero exit status, no crash, and no output file left behind.
#include <onnx/onnx_pb.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include <sys/stat.h>
#include <unistd.h>

#include "autotailor/common/files.h"
#include "autotailor/exec/executor.h"
#include "autotailor/import/tensor_file.h"
#include "model_builder.h"
#include "test_util.h"

namespace autotailor {
namespace {

namespace fs = std::filesystem;
using test::run_cli;

// A clean failure: non-zero status, no signal, exactly one line on stderr containing `needle`.
::testing::AssertionResult fails_cleanly(const test::CliResult& r, const std::string& needle) {
  if (r.signal)
    return ::testing::AssertionFailure() << "killed by signal " << r.signal << ": " << r.err;
  if (r.status == 0) return ::testing::AssertionFailure() << "exit status 0";
  if (std::count(r.err.begin(), r.err.end(), '\n') != 1)
    return ::testing::AssertionFailure() << "stderr is not one line: [" << r.err << "]";
  if (r.err.find(needle) == std::string::npos)
    return ::testing::AssertionFailure() << "stderr lacks '" << needle << "': " << r.err;
  return ::testing::AssertionSuccess();
}

TEST(Cli, VersionAndHelp) {
  auto v = run_cli("--version");
  EXPECT_EQ(v.status, 0);
  EXPECT_NE(v.out.find("autotailor"), std::string::npos);
  auto h = run_cli("--help");
  EXPECT_EQ(h.status, 0);
  for (const char* cmd : {"inspect", "run", "bench", "devices"})
    EXPECT_NE(h.out.find(cmd), std::string::npos) << cmd;
}

TEST(Cli, DevicesJsonListsHost) {
  auto r = run_cli("devices --json");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_FALSE(j["devices"].empty());
  EXPECT_EQ(j["devices"][0]["name"], "host");
}

TEST(Cli, InspectJsonAndDot) {
  std::string dir = test::temp_dir("inspect");
  auto r = run_cli("inspect " + test::fixture("resnet18.onnx") + " --json --dot " + dir + "/g.dot");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  // resnet18 at 224x224: 1.81 GMACs (torchvision's published figure); 11,689,512 parameters
  // less the 4,800 BatchNorm channels that folding into the convs removed (2 per channel in,
  // 1 bias per channel out).
  EXPECT_NEAR(j["stats"]["macs"].get<double>(), 1.814e9, 0.01e9);
  EXPECT_EQ(j["stats"]["parameters"].get<int64_t>(), 11689512 - 4800);
  EXPECT_EQ(j["stats"]["ops"]["Conv"]["count"], 20);
  EXPECT_EQ(j["graph"]["nodes"].size(), 49u);
  std::string dot = test::slurp(dir + "/g.dot");
  EXPECT_EQ(dot.rfind("digraph", 0), 0u);
  EXPECT_NE(dot.find("/layer4/layer4.1/conv2/Conv"), std::string::npos);
  auto text = run_cli("inspect --nodes " + test::fixture("mobilenet_v2.onnx"));
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("Clip"), std::string::npos);
  EXPECT_NE(text.out.find("1x1280x7x7"), std::string::npos);
}

TEST(Cli, RunWritesTheReferenceOutput) {
  std::string dir = test::temp_dir("run");
  auto r = run_cli("run " + test::fixture("mobilenet_v3_small.onnx") + " --input " +
                   test::fixture("mobilenet_v3_small.in4.pb") + " --output " + dir + "/y.pb");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  std::ifstream a(dir + "/y.pb", std::ios::binary);
  ASSERT_TRUE(a.good());
}

TEST(Cli, BenchJsonHasMedian) {
  auto r = run_cli("bench " + test::fixture("mobilenet_v3_small.onnx") +
                   " --runs 3 --warmup 1 --threads 1 --batch 2 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["median_ms"].get<double>(), 0.0);
  EXPECT_EQ(j["batch"], 2);
  EXPECT_EQ(j["threads"], 1);
}

// supernet -> run DIR -> export, as a user scripts it.
TEST(Cli, SupernetRunAndExport) {
  std::string dir = test::temp_dir("supernet_cli");
  std::string sn = dir + "/sn";
  auto r = run_cli("supernet " + test::fixture("mobilenet_v3_small.onnx") + " -o " + sn);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(sn + "/supernet.onnx"));
  auto space = nlohmann::json::parse(test::slurp(sn + "/space.json"));
  EXPECT_EQ(space["format"], "autotailor-space");
  EXPECT_GT(space["width_groups"].size(), 5u);

  auto run = run_cli("run " + sn + " --input " + test::fixture("mobilenet_v3_small.in4.pb") +
                     " --output " + dir + "/y.pb");
  ASSERT_EQ(run.status, 0) << run.err;
  auto y = exec::tensor_from_const(read_tensor_file(dir + "/y.pb"));
  auto want =
      exec::tensor_from_const(read_tensor_file(test::fixture("mobilenet_v3_small.out4.pb")));
  EXPECT_TRUE(test::all_close(y, want)) << "run DIR (max subnet) vs PyTorch";

  auto ex = run_cli("export " + sn + " --subnet random:4 -o " + dir + "/v.onnx");
  ASSERT_EQ(ex.status, 0) << ex.err;
  auto again = run_cli("inspect " + dir + "/v.onnx --json");
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_LT(nlohmann::json::parse(again.out)["stats"]["macs"].get<double>(),
            nlohmann::json::parse(
                run_cli("inspect " + test::fixture("mobilenet_v3_small.onnx") + " --json")
                    .out)["stats"]["macs"]
                .get<double>());

  auto js = run_cli("inspect " + test::fixture("resnet18.onnx") + " --space --json --dot " + dir +
                    "/s.dot");
  ASSERT_EQ(js.status, 0) << js.err;
  auto j = nlohmann::json::parse(js.out);
  EXPECT_EQ(j["space"]["width_groups"].size(), 12u);
  EXPECT_EQ(j["space"]["skippable_blocks"].size(), 5u);
  EXPECT_GT(j["space"]["log10_size"].get<double>(), 5.0);
  EXPECT_NE(test::slurp(dir + "/s.dot").find("fillcolor"), std::string::npos);
}

// Flags and an override file reshape the space: switch dimensions off, freeze, change ratios.
TEST(Cli, SpaceOptions) {
  std::string model = test::fixture("resnet18.onnx");
  auto space = [&](const std::string& flags) {
    auto r = run_cli("inspect " + model + " --space --json " + flags);
    EXPECT_EQ(r.status, 0) << r.err;
    return nlohmann::json::parse(r.out)["space"];
  };
  auto full = space("");
  EXPECT_EQ(space("--no-depth")["skippable_blocks"].size(), 0u);
  EXPECT_EQ(space("--no-kernel")["kernels"].size(), 0u);
  EXPECT_EQ(space("--no-resolution")["resolution"]["choices"].size(), 1u);
  EXPECT_EQ(space("--no-width")["width_groups"].size(), 0u);
  EXPECT_EQ(space("--width-ratios 0.5,1")["width_groups"][0]["choices"].size(), 2u);
  std::string first = full["width_groups"][0]["name"];
  EXPECT_EQ(space("--freeze " + first)["width_groups"].size(), 11u);
  std::string dir = test::temp_dir("space_cfg");
  std::ofstream(dir + "/narrow.json")
      << R"({"format":"autotailor-space","width_groups":[{"name":")" << first
      << R"(","choices":[32,64]}],"stages":[],"kernels":[]})";
  std::ofstream(dir + "/drops_max.json")
      << R"({"format":"autotailor-space","stages":[{"name":")"
      << full["stages"][0]["name"].get<std::string>() << R"(","choices":[0,1]}]})";
  auto bad = run_cli("inspect " + model + " --space --space-config " + dir + "/drops_max.json");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("must keep all"), std::string::npos) << bad.err;
  auto narrowed = space("--space-config " + dir + "/narrow.json");
  ASSERT_EQ(narrowed["width_groups"].size(), 1u);  // groups not listed are frozen
  EXPECT_EQ(narrowed["width_groups"][0]["choices"], nlohmann::json::array({32, 64}));
  EXPECT_LT(narrowed["log10_size"].get<double>(), full["log10_size"].get<double>());
}

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::temp_dir("bad"); }
  std::string path(const std::string& f) const { return dir_ + "/" + f; }
  void write(const std::string& f, const std::string& bytes) const {
    std::ofstream(path(f), std::ios::binary) << bytes;
  }
  // `run` on a bad model must not leave its output file behind.
  test::CliResult run_model(const std::string& model) const {
    auto r = run_cli("run " + model + " --input " + test::fixture("resnet18.in1.pb") +
                     " --output " + path("out.pb"));
    EXPECT_FALSE(fs::exists(path("out.pb")));
    return r;
  }
  std::string dir_;
};

TEST_F(BadInput, MissingFile) {
  EXPECT_TRUE(fails_cleanly(run_model(path("nope.onnx")), "nope.onnx"));
  EXPECT_TRUE(fails_cleanly(run_cli("inspect " + path("nope.onnx")), "nope.onnx"));
}

TEST_F(BadInput, EmptyFile) {
  write("empty.onnx", "");
  EXPECT_TRUE(fails_cleanly(run_model(path("empty.onnx")), "empty"));
}

TEST_F(BadInput, TruncatedFile) {
  std::string bytes = test::slurp(test::fixture("resnet18.onnx"));
  write("half.onnx", bytes.substr(0, bytes.size() / 2));
  EXPECT_TRUE(fails_cleanly(run_model(path("half.onnx")), "half.onnx"));
}

TEST_F(BadInput, RandomBytes) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 5; ++trial) {
    std::string bytes(4096, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    write("random.onnx", bytes);
    EXPECT_TRUE(fails_cleanly(run_cli("inspect " + path("random.onnx")), "random.onnx"));
  }
}

TEST_F(BadInput, UnsupportedOperator) {
  test::ModelBuilder b;
  b.input("x", {1, 4, 4}).output("y");
  b.node("Det", {"x"}, {"y"}, {}, "my_det");
  b.save(path("det.onnx"));
  auto r = run_cli("run " + path("det.onnx") + " --input " + test::fixture("resnet18.in1.pb") +
                   " --output " + path("out.pb"));
  EXPECT_TRUE(fails_cleanly(r, "Det"));
  EXPECT_NE(r.err.find("my_det"), std::string::npos);
  EXPECT_NE(r.err.find("opset 13"), std::string::npos);
  EXPECT_FALSE(fs::exists(path("out.pb")));
  // inspect still shows such a model, and says what the executor lacks.
  auto i = run_cli("inspect " + path("det.onnx"));
  EXPECT_EQ(i.status, 0) << i.err;
  EXPECT_NE(i.out.find("not supported"), std::string::npos);
}

TEST_F(BadInput, FailsTheChecker) {
  test::ModelBuilder b;
  b.input("x", {1, 3, 8, 8}).output("y");
  b.node("Relu", {"x", "x"}, {"y"});  // Relu takes one input
  b.save(path("bad.onnx"));
  EXPECT_TRUE(fails_cleanly(run_cli("inspect " + path("bad.onnx")), "checker"));
}

TEST_F(BadInput, WrongInputShape) {
  EXPECT_TRUE(fails_cleanly(run_cli("run " + test::fixture("resnet18.onnx") + " --input " +
                                    test::fixture("resnet18.in1.pb") + " --input " +
                                    test::fixture("resnet18.in1.pb") + " --output " + path("o.pb")),
                            "--input"));
  test::ModelBuilder b;
  b.input("x", {1, 3, 8, 8}).output("y");
  b.node("Relu", {"x"}, {"y"});
  b.save(path("small.onnx"));
  auto r = run_cli("run " + path("small.onnx") + " --input " + test::fixture("resnet18.in1.pb") +
                   " --output " + path("o.pb"));
  EXPECT_TRUE(fails_cleanly(r, "input 'x' must have shape 1x3x8x8"));
  EXPECT_FALSE(fs::exists(path("o.pb")));
}

TEST_F(BadInput, BadOptions) {
  EXPECT_TRUE(
      fails_cleanly(run_cli("bench " + test::fixture("resnet18.onnx") + " --batch 0"), "--batch"));
  EXPECT_TRUE(fails_cleanly(run_cli("frobnicate"), "frobnicate"));
  EXPECT_TRUE(fails_cleanly(run_cli("inspect"), "model"));
}

TEST_F(BadInput, InvalidSubnetConfig) {
  std::string sn = path("sn");
  ASSERT_EQ(run_cli("supernet " + test::fixture("resnet18.onnx") + " -o " + sn).status, 0);
  auto space = nlohmann::json::parse(test::slurp(sn + "/space.json"));
  std::string group = space["width_groups"][0]["name"];
  auto export_with = [&](const std::string& json) {
    write("cfg.json", json);
    auto r = run_cli("export " + sn + " --subnet " + path("cfg.json") + " -o " + path("v.onnx"));
    EXPECT_FALSE(fs::exists(path("v.onnx")));
    return r;
  };
  EXPECT_TRUE(
      fails_cleanly(export_with(R"({"format":"autotailor-subnet","widths":{"no_such_group":8}})"),
                    "unknown width group 'no_such_group'"));
  EXPECT_TRUE(fails_cleanly(
      export_with(R"({"format":"autotailor-subnet","widths":{")" + group + R"(":7}})"),
      "is not one of"));
  EXPECT_TRUE(fails_cleanly(export_with(R"({"format":"autotailor-subnet","resolution":100})"),
                            "resolution"));
  EXPECT_TRUE(fails_cleanly(export_with("{ not json"), "not valid JSON"));
  EXPECT_TRUE(fails_cleanly(run_cli("export " + sn + " --subnet random:x -o " + path("v.onnx")),
                            "random:"));
  EXPECT_TRUE(
      fails_cleanly(run_cli("export " + path("") + " -o " + path("v.onnx")), "supernet.onnx"));
  // Numbers that are not integers are errors, not truncated or wrapped (8.9 -> 8, 1e300 ->
  // INT64_MIN before).
  for (const char* v : {"8.9", "1e300", "18446744073709551615", "\"8\""})
    EXPECT_TRUE(fails_cleanly(
        export_with(R"({"format":"autotailor-subnet","widths":{")" + group + R"(":)" + v + "}}"),
        "must be an integer"))
        << v;
  EXPECT_TRUE(fails_cleanly(export_with(R"({"format":"autotailor-subnet","resolution":224.5})"),
                            "must be an integer"));
  // Options that would have been ignored.
  EXPECT_TRUE(fails_cleanly(run_cli("supernet " + test::fixture("resnet18.onnx") +
                                    " --freeze no_such_conv -o " + path("sn2")),
                            "--freeze no_such_conv"));
  auto shard = run_cli("profile " + sn + " --device exynos1380 --shard 1/2");
  EXPECT_TRUE(fails_cleanly(shard, "--shard 1/2: only with --bundle"));
  EXPECT_EQ(shard.status, 2) << "a bad option value, found after parsing";
}

TEST_F(BadInput, OpsetAndIrVersionNewerThanLibonnx) {
  test::ModelBuilder b(18);
  b.input("x", {1, 3, 8, 8}).output("y", {1, 3, 8, 8});
  b.node("Relu", {"x"}, {"y"});
  b.save(path("opset18.onnx"));
  EXPECT_TRUE(fails_cleanly(run_cli("inspect " + path("opset18.onnx")), "opset 18"));
  test::ModelBuilder c;
  c.input("x", {1, 3, 8, 8}).output("y", {1, 3, 8, 8});
  c.node("Relu", {"x"}, {"y"});
  c.proto().set_ir_version(99);
  c.save(path("ir99.onnx"));
  EXPECT_TRUE(fails_cleanly(run_cli("inspect " + path("ir99.onnx")), "ir99.onnx"));
}

TEST_F(BadInput, NonFiniteWeights) {
  for (float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    test::ModelBuilder b;
    b.input("x", {1, 2, 4, 4}).output("y");
    std::vector<float> w(2 * 2 * 1 * 1, 0.5f);
    w[3] = bad;
    b.weight("conv.weight", {2, 2, 1, 1}, w);
    b.node("Conv", {"x", "conv.weight"}, {"y"});
    b.save(path("nonfinite.onnx"));
    auto r = run_cli("supernet " + path("nonfinite.onnx") + " -o " + path("sn"));
    EXPECT_TRUE(fails_cleanly(r, "initializer 'conv.weight' holds a non-finite value")) << r.err;
    EXPECT_FALSE(fs::exists(path("sn/supernet.onnx")));
  }
}

// A MatMul model in `dir` whose 2x2 float weight lives in external data at `location`.
void save_external_model(const std::string& dir, const std::string& location,
                         const std::vector<std::pair<std::string, std::string>>& extra = {}) {
  fs::create_directories(dir);
  test::ModelBuilder b;
  b.input("x", {1, 2}).output("y", {1, 2});
  b.weight("w", {2, 2});
  auto* w = b.proto().mutable_graph()->mutable_initializer(0);
  w->clear_raw_data();
  w->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* loc = w->add_external_data();
  loc->set_key("location");
  loc->set_value(location);
  for (const auto& [k, v] : extra) {
    auto* e = w->add_external_data();
    e->set_key(k);
    e->set_value(v);
  }
  b.node("MatMul", {"x", "w"}, {"y"});
  b.save(dir + "/ext.onnx");
}

TEST_F(BadInput, ExternalDataFileMissing) {
  save_external_model(dir_, "weights.bin");
  EXPECT_TRUE(fails_cleanly(run_cli("inspect " + path("ext.onnx")), "weights.bin"));
  // With the file present the model loads.
  std::vector<float> data = {1, 2, 3, 4};
  write("weights.bin", std::string(reinterpret_cast<const char*>(data.data()), 16));
  EXPECT_EQ(run_cli("inspect " + path("ext.onnx")).status, 0);
}

// Security: external data never reads a file outside the model's folder, whatever the links.
TEST_F(BadInput, ExternalDataCannotEscapeThroughSymlinks) {
  const std::string secret(16, 'S');
  write("secret.bin", secret);
  fs::create_directories(path("outside"));
  write("outside/w.bin", secret);
  const std::string m = path("model");
  fs::create_directories(m);
  fs::create_symlink(path("secret.bin"), m + "/link.bin");  // a link to a file
  fs::create_symlink(path("outside"), m + "/dirlink");      // a link to a folder
  save_external_model(m, "link.bin");
  auto r = run_cli("supernet " + m + "/ext.onnx -o " + path("sn"));
  EXPECT_TRUE(fails_cleanly(r, "outside the model's folder")) << r.err;
  EXPECT_FALSE(fs::exists(path("sn/supernet.onnx")));
  save_external_model(m, "dirlink/w.bin");
  EXPECT_TRUE(fails_cleanly(run_cli("inspect " + m + "/ext.onnx"), "outside the model's folder"));
  // A link that stays inside the folder is fine.
  std::ofstream(m + "/real.bin", std::ios::binary) << secret;
  fs::create_symlink("real.bin", m + "/inside.bin");
  save_external_model(m, "inside.bin");
  EXPECT_EQ(run_cli("inspect " + m + "/ext.onnx").status, 0);
}

TEST_F(BadInput, ExternalDataMustBeARegularFileOfTheDeclaredSize) {
  const std::string m = path("model");
  fs::create_directories(m);
  ASSERT_EQ(::mkfifo((m + "/fifo.bin").c_str(), 0600), 0);
  save_external_model(m, "fifo.bin");
  auto r = run_cli("inspect " + m + "/ext.onnx");  // would block forever if opened
  EXPECT_TRUE(fails_cleanly(r, "not a regular file")) << r.err;
  std::ofstream(m + "/short.bin", std::ios::binary) << std::string(12, 'x');
  save_external_model(m, "short.bin");
  EXPECT_TRUE(fails_cleanly(run_cli("inspect " + m + "/ext.onnx"), "need 16")) << r.err;
  std::ofstream(m + "/long.bin", std::ios::binary) << std::string(64, '\0');
  save_external_model(m, "long.bin", {{"offset", "9223372036854775800"}, {"length", "16"}});
  EXPECT_TRUE(fails_cleanly(run_cli("inspect " + m + "/ext.onnx"), "beyond the end"));
  save_external_model(m, "long.bin", {{"offset", "8"}, {"length", "9223372036854775800"}});
  EXPECT_TRUE(fails_cleanly(run_cli("inspect " + m + "/ext.onnx"), "beyond the end"));
  save_external_model(m, "long.bin", {{"offset", "eight"}});
  EXPECT_TRUE(fails_cleanly(run_cli("inspect " + m + "/ext.onnx"), "invalid external data offset"));
  save_external_model(m, "long.bin", {{"offset", "16"}, {"length", "16"}});
  EXPECT_EQ(run_cli("inspect " + m + "/ext.onnx").status, 0);
}

TEST_F(BadInput, UnwritableOutput) {
  auto r = run_cli("export " + path("nowhere") + " -o /proc/forbidden.onnx");
  EXPECT_TRUE(fails_cleanly(r, "nowhere"));
  std::string sn = path("sn");
  ASSERT_EQ(run_cli("supernet " + test::fixture("mobilenet_v3_small.onnx") + " -o " + sn).status,
            0);
  EXPECT_TRUE(
      fails_cleanly(run_cli("export " + sn + " -o /proc/forbidden.onnx"), "/proc/forbidden.onnx"));
  EXPECT_TRUE(fails_cleanly(
      run_cli("supernet " + test::fixture("mobilenet_v3_small.onnx") + " -o /proc/x/sn"),
      "/proc/x/sn"));
}

TEST_F(BadInput, GraphWithoutOutputs) {
  test::ModelBuilder b;
  b.input("x", {1, 3, 8, 8});
  b.node("Relu", {"x"}, {"y"});
  b.save(path("no_outputs.onnx"));
  for (const char* cmd : {"inspect", "bench", "supernet"}) {
    std::string extra = std::string(cmd) == "supernet" ? " -o " + path("sn") : "";
    EXPECT_TRUE(fails_cleanly(run_cli(std::string(cmd) + " " + path("no_outputs.onnx") + extra),
                              "has no outputs"))
        << cmd;
  }
}

// float64 and float16 classifiers are valid models: converted to float32 ("input 'x' must be
// float64, got Float" before).
TEST_F(BadInput, Float64AndFloat16ModelsAreConvertedToFloat32) {
  for (int32_t type : {onnx::TensorProto::DOUBLE, onnx::TensorProto::FLOAT16}) {
    test::ModelBuilder b;
    b.input("x", {1, 3, 8, 8}, type).output("y", {1, 4}, type);
    auto* w = b.proto().mutable_graph()->add_initializer();
    w->set_name("w");
    w->set_data_type(type);
    for (int64_t d : {4, 3, 3, 3}) w->add_dims(d);
    std::string raw;
    for (int i = 0; i < 4 * 3 * 3 * 3; ++i) {
      if (type == onnx::TensorProto::DOUBLE) {
        double v = 0.01 * (i % 17) - 0.05;
        raw.append(reinterpret_cast<const char*>(&v), sizeof v);
      } else {
        uint16_t v = (i % 2) ? 0x3800 : 0xB400;  // 0.5, -0.25
        raw.append(reinterpret_cast<const char*>(&v), sizeof v);
      }
    }
    w->set_raw_data(raw);
    b.node("Conv", {"x", "w"}, {"c"}, {{"pads", {1, 1, 1, 1}}});
    b.node("GlobalAveragePool", {"c"}, {"p"});
    b.node("Flatten", {"p"}, {"y"});
    std::string f = path(type == onnx::TensorProto::DOUBLE ? "f64.onnx" : "f16.onnx");
    b.save(f);
    auto r = run_cli("supernet " + f + " -o " + path("sn") + std::to_string(type));
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("converted to float32"), std::string::npos) << r.err;
  }
}

// A classifier exported with a fixed batch of 4 trains with other batch sizes; one whose graph
// depends on the 4 gets a message that says so.
TEST_F(BadInput, FixedBatchModelsTrain) {
  for (bool reshape : {false, true}) {
    test::ModelBuilder b;
    b.input("x", {4, 3, 8, 8}).output("y", {4, 10});
    b.weight("w", {10, 3, 3, 3});
    b.node("Conv", {"x", "w"}, {"c"}, {{"pads", {1, 1, 1, 1}}});
    b.node("GlobalAveragePool", {"c"}, {"p"});
    if (reshape) {
      b.ints("shape", {4, 10});
      b.node("Reshape", {"p", "shape"}, {"y"});
    } else {
      b.node("Flatten", {"p"}, {"y"});
    }
    b.save(path("b4.onnx"));
    auto r = run_cli("train " + path("b4.onnx") +
                     " --data fashion-mnist --holdout 200 --epochs 1 --max-steps 2 --batch 16 -o " +
                     path("t.onnx"));
    if (!reshape) {
      EXPECT_EQ(r.status, 0) << r.err;
      EXPECT_TRUE(fs::exists(path("t.onnx")));
    } else {
      EXPECT_TRUE(fails_cleanly(r, "depends on its fixed batch of 4"));
    }
  }
}

// Sizes that would reach LibTorch's allocator or divide by zero are refused up front.
TEST_F(BadInput, HugeAndZeroSizedInputs) {
  test::ModelBuilder big;
  big.input("x", {1, 3, 1 << 20, 1 << 20}).output("y");
  big.node("Relu", {"x"}, {"y"});
  big.save(path("big.onnx"));
  for (const char* cmd : {"inspect", "bench"})
    EXPECT_TRUE(
        fails_cleanly(run_cli(std::string(cmd) + " " + path("big.onnx")), "the limit per tensor"))
        << cmd;
  test::ModelBuilder zero;
  zero.input("x", {1, 3, 0, 0}).output("y");
  zero.node("GlobalAveragePool", {"x"}, {"p"});
  zero.node("Flatten", {"p"}, {"y"});
  zero.save(path("zero.onnx"));
  EXPECT_TRUE(fails_cleanly(
      run_cli("compile " + path("zero.onnx") + " --device host -o " + path("z")), "zero size"));
}

// Outputs replace regular files only: a symlink, FIFO or the command's own input stays.
TEST_F(BadInput, OutputsNeverReplaceLinksFifosOrTheirInputs) {
  std::string sn = path("sn");
  ASSERT_EQ(run_cli("supernet " + test::fixture("mobilenet_v3_small.onnx") + " -o " + sn).status,
            0);
  write("precious.txt", "keep me");
  fs::create_symlink(path("precious.txt"), path("link.onnx"));
  EXPECT_TRUE(fails_cleanly(run_cli("export " + sn + " --subnet min -o " + path("link.onnx")),
                            "symbolic link"));
  EXPECT_TRUE(fs::is_symlink(path("link.onnx")));
  EXPECT_EQ(test::slurp(path("precious.txt")), "keep me");
  ASSERT_EQ(::mkfifo(path("fifo.pb").c_str(), 0644), 0);
  EXPECT_TRUE(
      fails_cleanly(run_cli("run " + test::fixture("resnet18.onnx") + " --input " +
                            test::fixture("resnet18.in1.pb") + " --output " + path("fifo.pb")),
                    "FIFO"));
  EXPECT_TRUE(fs::is_fifo(path("fifo.pb")));
  // The SuperNet a command reads, and the model `supernet` reads, are not outputs.
  std::string before = test::slurp(sn + "/supernet.onnx");
  EXPECT_TRUE(fails_cleanly(run_cli("export " + sn + " -o " + sn + "/supernet.onnx"),
                            "part of the SuperNet"));
  EXPECT_TRUE(fails_cleanly(run_cli("supernet " + sn + "/supernet.onnx -o " + sn), "input model"));
  EXPECT_TRUE(test::slurp(sn + "/supernet.onnx") == before);
  // Past a file-size limit: an error naming the file, no signal, no temporary left.
  auto big = run_cli("export " + sn + " -o " + path("big.onnx") + " 2>&1; ulimit -f 1; " +
                     AUTOTAILOR_BINARY + " export " + sn + " -o " + path("big.onnx"));
  EXPECT_TRUE(fails_cleanly(big, "big.onnx"));
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

// One writer per folder; a killed writer's temporaries are removed by the next.
TEST_F(BadInput, OneWriterPerFolder) {
  std::string sn = path("sn");
  fs::create_directories(sn);
  {
    DirLock held(sn);
    write("sn/space.json.tmp.99999", "half");  // as a writer killed mid-write leaves it
    EXPECT_TRUE(fails_cleanly(
        run_cli("supernet " + test::fixture("mobilenet_v3_small.onnx") + " -o " + sn),
        "in use by another autotailor process (pid " + std::to_string(::getpid()) + ")"));
  }
  EXPECT_TRUE(fs::exists(path("sn/space.json.tmp.99999")));
  ASSERT_EQ(run_cli("supernet " + test::fixture("mobilenet_v3_small.onnx") + " -o " + sn).status,
            0);
  EXPECT_FALSE(fs::exists(path("sn/space.json.tmp.99999")));
  DirLock held(sn);
  EXPECT_TRUE(fails_cleanly(run_cli("profile " + sn + " --device exynos1380"), "in use"));
}

TEST_F(BadInput, DynamicSpatialDimensions) {
  test::ModelBuilder b;
  b.input("x", {1, 3, -2, -2}).output("y");  // height and width symbolic ("H")
  b.weight("w", {4, 3, 3, 3});
  b.node("Conv", {"x", "w"}, {"y"});
  b.save(path("dyn.onnx"));
  EXPECT_TRUE(fails_cleanly(run_cli("supernet " + path("dyn.onnx") + " -o " + path("sn")),
                            "input 'x' has a dynamic dimension 2"));
  EXPECT_FALSE(fs::exists(path("sn/supernet.onnx")));
}

TEST_F(BadInput, NonUtf8NamesAreRefusedByName) {
  test::ModelBuilder b;
  b.input("x", {1, 3, 8, 8}).output("y", {1, 3, 8, 8});
  b.node("Relu", {"x"}, {"y"}, {}, std::string("relu\xff\xfe"));
  b.save(path("names.onnx"));
  EXPECT_TRUE(fails_cleanly(run_cli("inspect " + path("names.onnx") + " --space --json"),
                            "node #0's name is not valid UTF-8 text"));
}

// Without global pooling before the classifier (Flatten -> Gemm on a spatial map) the input
// size cannot change: the space says why, and a subnet asking for another size is refused.
TEST_F(BadInput, ClassifierWithoutGlobalPoolingKeepsItsResolution) {
  test::ModelBuilder b;
  b.input("x", {1, 3, 16, 16}).output("logits");
  b.weight("w", {8, 3, 3, 3}).weight("fc_w", {10, 8 * 8 * 8}).weight("fc_b", {10});
  b.node("Conv", {"x", "w"}, {"c"}, {{"pads", {1, 1, 1, 1}}, {"strides", {2, 2}}}, "conv");
  b.node("Relu", {"c"}, {"r"});
  b.node("Flatten", {"r"}, {"flat"});
  b.node("Gemm", {"flat", "fc_w", "fc_b"}, {"logits"}, {{"transB", {1}}}, "fc");
  b.save(path("fixed.onnx"));
  auto i = run_cli("inspect " + path("fixed.onnx") + " --space --json");
  ASSERT_EQ(i.status, 0) << i.err;
  auto space = nlohmann::json::parse(i.out)["space"];
  EXPECT_LE(space["resolution"]["choices"].size(), 1u) << space.dump();
  EXPECT_FALSE(space["resolution"].value("fixed_by", "").empty()) << space.dump();
  std::string sn = path("sn");
  ASSERT_EQ(run_cli("supernet " + path("fixed.onnx") + " -o " + sn).status, 0);
  write("r12.json", R"({"format":"autotailor-subnet","resolution":12})");
  auto r = run_cli("export " + sn + " --subnet " + path("r12.json") + " -o " + path("v.onnx"));
  EXPECT_TRUE(fails_cleanly(r, "resolution")) << r.err;
  EXPECT_FALSE(fs::exists(path("v.onnx")));
}

TEST_F(BadInput, UnknownDeviceAndLutMissingEntries) {
  std::string sn = path("sn");
  ASSERT_EQ(run_cli("supernet " + test::fixture("mobilenet_v3_small.onnx") + " -o " + sn +
                    " --no-resolution --no-kernel --no-depth --width-ratios 0.5,1")
                .status,
            0);
  EXPECT_TRUE(fails_cleanly(run_cli("predict " + sn + " --device nosuchphone --subnet max"),
                            "unknown device 'nosuchphone'"));
  EXPECT_TRUE(fails_cleanly(run_cli("profile " + sn + " --device nosuchphone"), "nosuchphone"));
  ASSERT_EQ(run_cli("profile " + sn + " --device host --threads 1 -q").status, 0);
  // Drop entries from the LUT, as a partial copy or a hand edit would.
  auto lut = nlohmann::json::parse(test::slurp(sn + "/lut_host.json"));
  ASSERT_GT(lut["entries"].size(), 4u);
  nlohmann::json& e = lut["entries"];
  if (e.is_object()) {
    std::vector<std::string> keys;
    for (auto it = e.begin(); it != e.end(); ++it) keys.push_back(it.key());
    for (size_t k = 0; k < keys.size(); k += 2) e.erase(keys[k]);
  } else {
    nlohmann::json kept = nlohmann::json::array();
    for (size_t k = 1; k < e.size(); k += 2) kept.push_back(e[k]);
    e = kept;
  }
  std::ofstream(sn + "/lut_host.json") << lut.dump(2);
  auto r = run_cli("predict " + sn + " --device host --subnet max");
  EXPECT_TRUE(fails_cleanly(r, "the host LUT has no entry for")) << r.err;
  EXPECT_NE(r.err.find("autotailor profile"), std::string::npos) << r.err;
  // Profiling again measures only what is missing, and then prediction works.
  ASSERT_EQ(run_cli("profile " + sn + " --device host --threads 1 -q").status, 0);
  EXPECT_EQ(run_cli("predict " + sn + " --device host --subnet max").status, 0);
}

TEST_F(BadInput, NotATensorFile) {
  write("x.pb", "definitely not a tensor");
  EXPECT_TRUE(fails_cleanly(run_cli("run " + test::fixture("resnet18.onnx") + " --input " +
                                    path("x.pb") + " --output " + path("o.pb")),
                            "x.pb"));
  EXPECT_FALSE(fs::exists(path("o.pb")));
  // Dimensions whose product passes 2^63 (here wrapping to exactly 0 bytes) are refused,
  // not taken for an empty tensor.
  onnx::TensorProto t;
  t.set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : {int64_t{1} << 62, int64_t{4}, int64_t{4}}) t.add_dims(d);
  t.set_raw_data("");
  write("huge.pb", t.SerializeAsString());
  EXPECT_TRUE(fails_cleanly(run_cli("run " + test::fixture("resnet18.onnx") + " --input " +
                                    path("huge.pb") + " --output " + path("o.pb")),
                            "more elements than fit in 64 bits"));
}

// A results CSV whose runs column is not a count (1e300 was stored as INT_MIN).
TEST_F(BadInput, LatencyCsvCountsAreCounts) {
  std::string sn = path("sn");
  ASSERT_EQ(run_cli("supernet " + test::fixture("mobilenet_v3_small.onnx") +
                    " --width-ratios 0.5,1 --no-depth --no-kernel --resolutions 1 -o " + sn)
                .status,
            0);
  ASSERT_EQ(run_cli("profile " + sn + " --device exynos1380 --bundle " + path("b")).status, 0);
  auto manifest = nlohmann::json::parse(test::slurp(path("b/manifest.json")));
  std::string id = manifest["models"][0]["id"].get<std::string>();
  for (const char* runs : {"1e300", "2.5", "-1"}) {
    write("r.csv", "id,median_ms,p10_ms,p90_ms,runs\n" + id + ",1,1,1," + runs + "\n");
    EXPECT_TRUE(
        fails_cleanly(run_cli("profile " + sn + " --device exynos1380 --import " + path("r.csv")),
                      "r.csv:2: runs"))
        << runs;
  }
}

}  // namespace
}  // namespace autotailor
