// Fine-tuning: BatchNorm re-insertion, training through subnet views, resume, the CLI commands
// and data-parallel training. Uses the reference architectures (random init) and the real
// Fashion-MNIST on every machine.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <set>
#include <thread>

#include "autotailor/common/error.h"
#include "autotailor/import/onnx_import.h"
#include "autotailor/supernet/supernet.h"
#include "autotailor/train/batchnorm.h"
#include "autotailor/train/parameters.h"
#include "autotailor/train/trainer.h"
#include "test_util.h"

namespace autotailor {
namespace {

namespace fs = std::filesystem;
using test::run_cli;

using test::reference;

train::TrainData fashion(const ir::Graph& g, size_t holdout = 1000) {
  train::ModelShape m = train::model_shape(g);
  train::TrainData d;
  d.source = data::open_data("fashion-mnist");
  d.pre.channels = m.channels;
  d.pre.height = m.height;
  d.pre.width = m.width;
  d.split = data::holdout_split(*d.source.train, holdout, 0);
  return d;
}

at::Tensor probe_input(int64_t batch = 4, int64_t size = 32) {
  at::manual_seed(7);
  return at::rand({batch, 3, size, size});
}

int64_t input_size(const ir::Graph& g) {
  return g.tensor(g.inputs[0]).shape[2];
}

at::Tensor run_graph(std::shared_ptr<const ir::Graph> g, const at::Tensor& x) {
  exec::Executor ex(std::move(g));
  return ex.run({x})[0];
}

TEST(BatchNorm, InsertedAfterSpatialConvsAndKeepsTheFunction) {
  std::shared_ptr<const ir::Graph> g = import_onnx(reference("resnet_fm"));
  auto copy = std::make_shared<ir::Graph>(*g);
  std::vector<std::string> added = train::insert_batchnorm(*copy);
  // Stem, 16 block convs and 3 projection shortcuts; not the classifier.
  EXPECT_EQ(added.size(), 20u);
  EXPECT_TRUE(train::insert_batchnorm(*std::make_shared<ir::Graph>(*copy)).size() == 0)
      << "a second pass finds every conv already followed by BatchNorm";
  train::TrainData d = fashion(*g, 256);
  auto measured = train::recalibrate(copy, d, 256, /*measure_only=*/true);
  train::make_identity(*measured, added);
  at::Tensor x = probe_input();
  EXPECT_TRUE(test::all_close(run_graph(measured, x), run_graph(g, x), 1e-5, 1e-5));
  // The statistics are those of the conv outputs: not the placeholders.
  const ir::Node& bn = *std::find_if(measured->nodes.begin(), measured->nodes.end(),
                                     [&](const ir::Node& n) { return n.name == added[0]; });
  std::vector<double> var = measured->tensor(bn.inputs[4]).value->to_double();
  EXPECT_TRUE(std::any_of(var.begin(), var.end(), [](double v) { return std::abs(v - 1) > 1e-3; }));
}

TEST(BatchNorm, OverShrunkenMapsButNotOnPooledFeatures) {
  // MobileNetV2 x0.5 at 32x32: the last stage's maps are 1x1, and its convs get a BatchNorm
  // too (without one, training from random initialisation stalls).
  std::shared_ptr<const ir::Graph> g = import_onnx(reference("mobilenet_v2_fm"));
  ir::Graph copy = *g;
  std::vector<std::string> added = train::insert_batchnorm(copy);
  int convs = 0, one_position = 0;
  for (const ir::Node& n : g->nodes) {
    if (n.op_type != "Conv") continue;
    ++convs;
    const ir::Shape& s = g->tensor(n.outputs[0]).shape;
    one_position += s[2] * s[3] == 1;
  }
  EXPECT_GT(one_position, 0);
  EXPECT_EQ(static_cast<int>(added.size()), convs);

  // MobileNetV3-small: the squeeze-excitation convs read pooled features and get none.
  std::shared_ptr<const ir::Graph> v3 = import_onnx(test::fixture("mobilenet_v3_small.onnx"));
  added = train::insert_batchnorm(*std::make_shared<ir::Graph>(*v3));
  std::set<std::string> bn_after;
  for (const auto& name : added) bn_after.insert(name.substr(0, name.rfind("/bn")));
  int se = 0;
  for (const ir::Node& n : v3->nodes) {
    if (n.op_type != "Conv") continue;
    int p = v3->tensor(n.inputs[0]).producer;
    bool pooled = false;
    for (int hops = 0; p >= 0 && hops < 3; ++hops) {
      const std::string& op = v3->nodes[p].op_type;
      if (op == "GlobalAveragePool" || op == "ReduceMean") {
        pooled = true;
        break;
      }
      p = v3->tensor(v3->nodes[p].inputs[0]).producer;
    }
    se += pooled;
    EXPECT_EQ(bn_after.count(n.name), pooled ? 0u : 1u) << n.name;
  }
  EXPECT_GT(se, 10);
}

TEST(Training, SubnetGradientsLandInTheSharedSlices) {
  auto g = std::make_shared<ir::Graph>(*import_onnx(reference("resnet_fm")));
  supernet::Supernet s(g, {});
  supernet::SubnetConfig min = supernet::min_subnet(s.space());
  std::shared_ptr<const ir::Graph> sub = s.derive(min);
  train::ParameterStore store(s.graph());
  exec::Executor ex(sub, {true, nullptr});
  EXPECT_GT(store.bind(ex), 20);
  at::Tensor y = ex.run({probe_input(4, input_size(*sub))})[0];
  y.sum().backward();
  // The stem conv's output channels form a width group: only its kept rows get gradient.
  const ir::Node& stem = s.graph().nodes.front();
  ASSERT_EQ(stem.op_type, "Conv");
  std::string wname = s.graph().tensor(stem.inputs[1]).name;
  at::Tensor w = store.named().at(wname);
  int64_t kept = sub->tensor(sub->find(wname)).shape[0];
  ASSERT_LT(kept, w.size(0));
  EXPECT_GT(w.grad().narrow(0, 0, kept).abs().sum().item<double>(), 0.0);
  EXPECT_EQ(w.grad().narrow(0, kept, w.size(0) - kept).abs().sum().item<double>(), 0.0);
}

TEST(Training, PlainModelLearns) {
  std::shared_ptr<const ir::Graph> g = import_onnx(reference("mlp_fm"));
  train::TrainData d = fashion(*g);
  train::ParameterStore store(*g);
  train::TrainOptions o;
  o.batch_size = 64;
  o.max_steps = 60;
  train::TrainReport r = train::fit(g, nullptr, store, d, o, "");
  EXPECT_EQ(r.steps, 60);
  auto trained = store.write_back(*g);
  train::Accuracy before = train::evaluate(g, d, 256, 2, 2000);
  train::Accuracy after = train::evaluate(trained, d, 256, 2, 2000);
  EXPECT_EQ(after.images, 2000u);
  ASSERT_EQ(after.correct.size(), 2000u);
  EXPECT_EQ(std::count(after.correct.begin(), after.correct.end(), 1),
            std::lround(after.top1 * 2000));
  EXPECT_GT(after.top1, 0.6) << "before: " << before.top1;
  EXPECT_GT(after.top1, before.top1 + 0.3);
}

// A run stopped after its checkpoint and resumed ends with the same weights as one that ran
// through: data order and random subnets depend on (seed, step) only.
TEST(Training, ResumeEqualsUninterrupted) {
  std::string dir = test::temp_dir("resume");
  auto g = std::make_shared<ir::Graph>(*import_onnx(reference("resnet_fm")));
  train::TrainData d = fashion(*g, 256);
  train::insert_batchnorm(*g);
  auto with_bn = train::recalibrate(g, d, 128, true);
  supernet::Supernet s(with_bn, {});
  train::TrainOptions o;
  o.batch_size = 16;
  o.max_steps = 4;
  o.checkpoint_every = 2;
  o.epochs = 1;

  train::ParameterStore straight(s.graph());
  train::fit(s.graph_ptr(), &s, straight, d, o, dir + "/a.ckpt");

  train::TrainOptions first = o;
  first.max_steps = 2;
  train::ParameterStore interrupted(s.graph());
  train::fit(s.graph_ptr(), &s, interrupted, d, first, dir + "/b.ckpt");
  train::ParameterStore resumed(s.graph());  // a fresh process: initial weights
  train::TrainReport r = train::fit(s.graph_ptr(), &s, resumed, d, o, dir + "/b.ckpt");
  EXPECT_EQ(r.first_step, 2);
  EXPECT_EQ(r.steps, 4);
  auto a = straight.named(), b = resumed.named();
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (auto& [name, t] : a) worst = std::max(worst, (t - b.at(name)).abs().max().item<double>());
  EXPECT_EQ(worst, 0.0) << "largest difference after resuming";
  // Other options: the checkpoint is refused, not silently mixed in.
  train::TrainOptions other = o;
  other.seed = 5;
  train::ParameterStore x(s.graph());
  EXPECT_THROW(train::fit(s.graph_ptr(), &s, x, d, other, dir + "/b.ckpt"), Error);
  fs::remove_all(dir);
}

TEST(TrainCli, TrainFinetuneEvaluateExport) {
  std::string dir = test::temp_dir("train_cli");
  auto r = run_cli("train " + reference("resnet_fm") +
                   " --data fashion-mnist --max-steps 30 --batch 32 --holdout 500 -o " + dir +
                   "/trained.onnx --json");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("\"accuracy\""), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir + "/trained.onnx.ckpt"));
  // The trained file is plain ONNX again: BatchNorm folded back.
  auto trained = import_onnx(dir + "/trained.onnx");
  EXPECT_TRUE(train::batchnorm_nodes(*trained).empty());

  std::string sn = dir + "/sn";
  ASSERT_EQ(run_cli("supernet " + dir + "/trained.onnx -o " + sn).status, 0);
  auto f =
      run_cli("finetune " + sn + " --data fashion-mnist --max-steps 8 --batch 16 --holdout 500");
  ASSERT_EQ(f.status, 0) << f.err;
  EXPECT_TRUE(fs::exists(sn + "/finetune.json"));
  EXPECT_FALSE(fs::exists(sn + "/finetune.ckpt"));
  EXPECT_FALSE(train::batchnorm_nodes(*import_onnx(sn + "/supernet.onnx")).empty());

  auto e = run_cli("evaluate " + sn + " --subnet min --data fashion-mnist --json");
  ASSERT_EQ(e.status, 0) << e.err;
  EXPECT_NE(e.out.find("\"batchnorm_recalibrated\": true"), std::string::npos) << e.out;

  // Export recalibrates as `run` does, folds BatchNorm, and computes what `run` computes.
  auto x = run_cli("export " + sn + " --subnet random:3 -o " + dir + "/v.onnx");
  ASSERT_EQ(x.status, 0) << x.err;
  auto v = import_onnx(dir + "/v.onnx");
  EXPECT_TRUE(train::batchnorm_nodes(*v).empty());
  at::Tensor in = probe_input(2, input_size(*v));
  write_tensor_file(dir + "/in.pb", *exec::const_from_tensor(in), "input");
  ASSERT_EQ(run_cli("run " + sn + " --subnet random:3 --input " + dir + "/in.pb --output " + dir +
                    "/out.pb")
                .status,
            0);
  at::Tensor want = exec::tensor_from_const(read_tensor_file(dir + "/out.pb"));
  EXPECT_TRUE(test::all_close(run_graph(v, in), want));
  fs::remove_all(dir);
}

TEST(TrainCli, BadDataIsOneLineError) {
  std::string dir = test::temp_dir("train_bad");
  auto r = run_cli("train " + reference("mlp_fm") + " --data nonsense -o " + dir + "/x.onnx");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("nonsense"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/x.onnx"));
  fs::remove_all(dir);
}

// kill -9 during `train`, then the same command again: the result is byte-identical to an
// uninterrupted run's.
TEST(TrainCli, KillNineThenRerunMatchesUninterrupted) {
  std::string dir = test::temp_dir("kill9");
  std::string args = "train " + reference("resnet_fm") +
                     " --data fashion-mnist --max-steps 24 --batch 16 --holdout 500 "
                     "--checkpoint-every 3 -q -o ";
  ASSERT_EQ(run_cli(args + dir + "/a.onnx").status, 0);
  for (int trial = 0; trial < 2; ++trial) {
    pid_t pid = test::start_cli(args + dir + "/b.onnx");
    // Wait until a checkpoint exists (and a little more), then kill it hard.
    for (int i = 0; i < 600 && !fs::exists(dir + "/b.onnx.ckpt"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + 400 * trial));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  EXPECT_FALSE(fs::exists(dir + "/b.onnx")) << "the run should have been killed before the end";
  auto r = run_cli(args + dir + "/b.onnx");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(test::slurp(dir + "/a.onnx") == test::slurp(dir + "/b.onnx"));
  fs::remove_all(dir);
}

// kill -9 at random points of `finetune` (training, the final evaluation, the writes), then
// the same command again: the SuperNet's weights equal an uninterrupted run's, byte for byte.
TEST(TrainCli, FinetuneKillNineAtRandomPointsThenRerunMatchesUninterrupted) {
  std::string dir = test::temp_dir("finetune_kill9");
  std::string a = dir + "/a", b = dir + "/b";
  ASSERT_EQ(run_cli("supernet " + reference("resnet_fm") + " -o " + a).status, 0);
  fs::copy(a, b);
  std::string args =
      " --data fashion-mnist --max-steps 16 --batch 16 --holdout 500 --checkpoint-every 2 -q";
  auto first = run_cli("finetune " + a + args);
  ASSERT_EQ(first.status, 0) << first.err;
  std::mt19937 rng(5);
  auto complete = [&] {
    return fs::exists(b + "/finetune.json") && !fs::exists(b + "/finetune.ckpt");
  };
  int interrupted = 0;
  for (int trial = 0; trial < 3 && !complete(); ++trial) {
    pid_t pid = test::start_cli("finetune " + b + args);
    std::this_thread::sleep_for(std::chrono::milliseconds(500 + rng() % 4000));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    interrupted += WIFSIGNALED(status);
  }
  EXPECT_GT(interrupted, 0);
  // Rerun unless a trial got to the end (a finished fine-tuning must not be repeated).
  if (!complete()) {
    auto again = run_cli("finetune " + b + args);
    ASSERT_EQ(again.status, 0) << again.err;
  }
  EXPECT_TRUE(test::slurp(a + "/supernet.onnx") == test::slurp(b + "/supernet.onnx"));
  auto ja = nlohmann::json::parse(test::slurp(a + "/finetune.json"));
  auto jb = nlohmann::json::parse(test::slurp(b + "/finetune.json"));
  EXPECT_EQ(ja["steps"], jb["steps"]);
  EXPECT_EQ(ja["accuracy"], jb["accuracy"]);
  fs::remove_all(dir);
}

// Two processes with half the global batch each reach the weights one process reaches: a model
// without BatchNorm (per-process batch statistics would differ, as in PyTorch DDP without
// SyncBatchNorm), so only the order of floating-point sums differs.
TEST(TrainCli, TwoProcessesMatchOne) {
  std::string dir = test::temp_dir("ddp");
  std::string args =
      "train " + reference("mlp_fm") +
      " --data fashion-mnist --max-steps 20 --batch 64 --holdout 500 -q --threads 1 -o ";
  auto one = run_cli(args + dir + "/one.onnx");
  ASSERT_EQ(one.status, 0) << one.err;
  auto two = run_cli(args + dir + "/two.onnx --nproc 2");
  ASSERT_EQ(two.status, 0) << two.err;
  auto a = import_onnx(dir + "/one.onnx"), b = import_onnx(dir + "/two.onnx");
  ASSERT_EQ(a->tensors.size(), b->tensors.size());
  for (const ir::Tensor& t : a->tensors) {
    if (!t.is_const()) continue;
    int j = b->find(t.name);
    ASSERT_GE(j, 0) << t.name;
    at::Tensor x = exec::tensor_from_const(t.value),
               y = exec::tensor_from_const(b->tensor(j).value);
    EXPECT_TRUE(test::all_close(y, x, 1e-5, 1e-4)) << t.name;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace autotailor
