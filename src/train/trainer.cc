#include "autotailor/train/trainer.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <numbers>

#include "autotailor/common/error.h"
#include "autotailor/common/progress.h"

namespace autotailor::train {

namespace {

// A 64-bit mix of several values (splitmix64 steps): seeds for epochs and random subnets that
// are the same on every machine.
uint64_t mix(uint64_t a, uint64_t b, uint64_t c = 0) {
  auto step = [](uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  };
  return step(step(step(a) ^ b) ^ c);
}

at::Tensor resize_to(const at::Tensor& x, const ir::Graph& g) {
  const ir::Shape& s = g.tensor(g.inputs[0]).shape;
  if (x.size(2) == s[2] && x.size(3) == s[3]) return x;
  return at::upsample_bilinear2d(x, {s[2], s[3]}, false);
}

// One subnet's executor, its constants bound to the store before every use (fresh views, so
// that no autograd node is reused across steps).
struct SubnetRun {
  std::shared_ptr<const ir::Graph> graph;
  std::unique_ptr<exec::Executor> ex;
};

SubnetRun make_run(std::shared_ptr<const ir::Graph> g,
                   std::shared_ptr<const exec::BatchNormMode> mode) {
  SubnetRun r;
  r.graph = std::move(g);
  r.ex = std::make_unique<exec::Executor>(r.graph, exec::ExecOptions{true, std::move(mode)});
  return r;
}

double lr_at(int64_t step, int64_t total, int64_t warmup, double base) {
  if (step < warmup) return base * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (total <= warmup) return base;
  double t = static_cast<double>(step - warmup) / static_cast<double>(total - warmup);
  return 0.5 * base * (1.0 + std::cos(std::numbers::pi * t));
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const ParameterStore& store,
                                                        const TrainOptions& o) {
  double lr = o.resolved_lr(), wd = o.resolved_weight_decay();
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (o.optimizer == "sgd") {
    auto opts = [&](double decay) {
      return std::make_unique<torch::optim::SGDOptions>(torch::optim::SGDOptions(lr)
                                                            .momentum(o.momentum)
                                                            .weight_decay(decay)
                                                            .nesterov(o.momentum > 0));
    };
    groups.emplace_back(store.weights(), opts(wd));
    groups.emplace_back(store.others(), opts(0));
    return std::make_unique<torch::optim::SGD>(std::move(groups), torch::optim::SGDOptions(lr));
  }
  if (o.optimizer == "adamw") {
    auto opts = [&](double decay) {
      return std::make_unique<torch::optim::AdamWOptions>(
          torch::optim::AdamWOptions(lr).weight_decay(decay));
    };
    groups.emplace_back(store.weights(), opts(wd));
    groups.emplace_back(store.others(), opts(0));
    return std::make_unique<torch::optim::AdamW>(std::move(groups), torch::optim::AdamWOptions(lr));
  }
  usage_fail("--optimizer: unknown optimizer '{}' (use sgd or adamw)", o.optimizer);
}

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) g.options().set_lr(lr);
}

std::string names_of(const std::map<std::string, at::Tensor>& named) {
  std::string s;
  for (const auto& [name, t] : named) {
    s += name;
    s += "\n";
  }
  return s;
}

void save_checkpoint(const std::string& path, const std::string& fingerprint, int64_t step,
                     const ParameterStore& store, torch::optim::Optimizer& opt) {
  torch::serialize::OutputArchive a;
  a.write("format", c10::IValue(std::string("autotailor-checkpoint-1")));
  a.write("fingerprint", c10::IValue(fingerprint));
  a.write("step", c10::IValue(step));
  auto named = store.named();
  a.write("names", c10::IValue(names_of(named)));
  int i = 0;
  for (const auto& [name, t] : named) a.write(fmt::format("t{}", i++), t.detach(), true);
  torch::serialize::OutputArchive o;
  opt.save(o);
  a.write("optimizer", o);
  std::string tmp = path + ".tmp";
  a.save_to(tmp);
  std::filesystem::rename(tmp, path);
}

// Returns the step to continue from (0 when there is no checkpoint).
int64_t load_checkpoint(const std::string& path, const std::string& fingerprint,
                        ParameterStore& store, torch::optim::Optimizer& opt) {
  if (path.empty() || !std::filesystem::exists(path)) return 0;
  torch::serialize::InputArchive a;
  try {
    a.load_from(path);
  } catch (const std::exception&) {
    fail("{}: not a readable checkpoint; delete it to start over", path);
  }
  c10::IValue v;
  if (!a.try_read("format", v) || v.toStringRef() != "autotailor-checkpoint-1")
    fail("{}: not an autotailor checkpoint; delete it to start over", path);
  a.read("fingerprint", v);
  if (v.toStringRef() != fingerprint)
    fail(
        "{}: checkpoint of a run with other options, model or data; rerun with the same "
        "options to resume, or delete it to start over",
        path);
  auto named = store.named();
  a.read("names", v);
  if (v.toStringRef() != names_of(named))
    fail("{}: checkpoint of another graph; delete it to start over", path);
  a.read("step", v);
  int64_t step = v.toInt();
  int i = 0;
  at::NoGradGuard no_grad;
  for (auto& [name, t] : named) {
    at::Tensor saved;
    a.read(fmt::format("t{}", i++), saved, true);
    if (!saved.sizes().equals(t.sizes())) fail("{}: tensor '{}' has another shape", path, name);
    t.copy_(saved);
  }
  torch::serialize::InputArchive o;
  a.read("optimizer", o);
  opt.load(o);
  return step;
}

}  // namespace

double TrainOptions::resolved_lr() const {
  if (lr > 0) return lr;
  double base = optimizer == "adamw" ? 1e-3 : 0.05;
  return base * static_cast<double>(batch_size) / 64.0;
}

double TrainOptions::resolved_weight_decay() const {
  if (weight_decay >= 0) return weight_decay;
  return optimizer == "adamw" ? 0.01 : 5e-5;
}

std::string TrainOptions::fingerprint() const {
  return fmt::format(
      "epochs={} batch={} optimizer={} lr={} momentum={} wd={} warmup={} ls={} random={} "
      "seed={}",
      epochs, batch_size, optimizer, resolved_lr(), momentum, resolved_weight_decay(),
      warmup_epochs, label_smoothing, random_subnets, seed);
}

ModelShape model_shape(const ir::Graph& g) {
  if (g.inputs.size() != 1 || g.outputs.size() != 1)
    fail("{}: training needs an image classifier with one input and one output ({} and {})",
         g.source, g.inputs.size(), g.outputs.size());
  const ir::Tensor& x = g.tensor(g.inputs[0]);
  const ir::Tensor& y = g.tensor(g.outputs[0]);
  if (x.shape.size() != 4 || x.dtype != ir::DType::Float32)
    fail("{}: input '{}' is not a float image batch [N, C, H, W] ({})", g.source, x.name,
         ir::shape_str(x.shape));
  if (y.shape.size() != 2)
    fail("{}: output '{}' is not class scores [N, classes] ({})", g.source, y.name,
         ir::shape_str(y.shape));
  if (x.shape[1] < 1 || x.shape[2] < 1 || x.shape[3] < 1 || y.shape[1] < 1)
    fail("{}: input '{}' ({}) or output '{}' ({}) has a zero size", g.source, x.name,
         ir::shape_str(x.shape), y.name, ir::shape_str(y.shape));
  return {x.shape[1], x.shape[2], x.shape[3], y.shape[1]};
}

TrainReport fit(std::shared_ptr<const ir::Graph> graph, const supernet::Supernet* family,
                ParameterStore& store, const TrainData& data, const TrainOptions& o,
                const std::string& checkpoint, Collective* collective) {
  model_shape(*graph);  // checks it is a classifier
  int rank = collective ? collective->rank() : 0, world = collective ? collective->world() : 1;
  if (o.batch_size % world != 0)
    fail("--batch {} does not split evenly across {} processes", o.batch_size, world);
  auto optimizer = make_optimizer(store, o);
  std::string fingerprint =
      fmt::format("{} model={} params={} data={} train={} calib={} world={}", o.fingerprint(),
                  graph->source, store.parameter_count(), data.source.spec, data.split.train.size(),
                  data.split.calibration.size(), world);
  int64_t step = load_checkpoint(checkpoint, fingerprint, store, *optimizer);

  data::LoaderOptions lo;
  lo.batch_size = o.batch_size;
  lo.drop_last = true;
  lo.threads = o.workers;
  lo.rank = rank;
  lo.world = world;
  lo.shuffle = true;
  int64_t per_epoch = static_cast<int64_t>(data.split.train.size()) / o.batch_size;
  if (per_epoch == 0)
    fail("--batch {} is larger than the {} training images", o.batch_size, data.split.train.size());
  int64_t total = per_epoch * o.epochs;
  int64_t stop = o.max_steps > 0 ? std::min(total, o.max_steps) : total;
  int64_t warmup = std::max<int64_t>(1, std::llround(o.warmup_epochs * per_epoch));
  double base_lr = o.resolved_lr();

  auto mode = std::make_shared<exec::BatchNormMode>();
  mode->kind = exec::BatchNormMode::Kind::Train;
  SubnetRun max_run, min_run;
  if (family) {
    max_run = make_run(family->derive(supernet::max_subnet(family->space())), mode);
    min_run = make_run(family->derive(supernet::min_subnet(family->space())), mode);
  } else {
    max_run = make_run(graph, mode);
  }
  std::vector<at::Tensor> params = store.weights();
  for (const at::Tensor& t : store.others()) params.push_back(t);

  TrainReport report;
  report.first_step = step;
  if (step > 0) spdlog::info("resuming from {} at step {}/{}", checkpoint, step, total);
  if (step >= stop) {
    report.steps = step;
    return report;
  }
  Progress progress(family ? "fine-tuning" : "training", static_cast<size_t>(stop),
                    static_cast<size_t>(step));
  auto start = std::chrono::steady_clock::now();
  // Throughput leaves out the first steps of a run (allocator and oneDNN warm-up) when it
  // has enough others.
  constexpr int64_t kWarmupSteps = 3;
  auto timed_from = start;
  int64_t images = 0, timed_images = 0;
  double loss_avg = 0;
  while (step < stop) {
    int64_t epoch = step / per_epoch;
    lo.seed = mix(o.seed, static_cast<uint64_t>(epoch));
    lo.first_batch = static_cast<size_t>(step % per_epoch);
    data::Loader loader(data.source.train, data.split.train, data.pre, lo);
    while (step < stop && step / per_epoch == epoch) {
      std::optional<data::Batch> b = loader.next();
      if (!b) fail("internal: the loader ended early at step {}", step);
      set_lr(*optimizer, lr_at(step, total, warmup, base_lr));
      for (at::Tensor& p : params)
        if (p.grad().defined()) p.mutable_grad().zero_();
      at::Tensor x = b->images, y = b->labels;
      store.bind(*max_run.ex);
      at::Tensor logits = max_run.ex->run({resize_to(x, *max_run.graph)})[0];
      at::Tensor loss =
          at::cross_entropy_loss(logits, y, {}, at::Reduction::Mean, -100, o.label_smoothing);
      loss.backward();
      double loss_value = loss.item<double>();
      if (family) {
        at::Tensor soft = at::softmax(logits.detach(), 1);
        auto distill = [&](SubnetRun& r) {
          store.bind(*r.ex);
          at::Tensor z = r.ex->run({resize_to(x, *r.graph)})[0];
          at::Tensor kd = -(soft * at::log_softmax(z, 1)).sum(1).mean();
          kd.backward();
        };
        distill(min_run);
        for (int k = 0; k < o.random_subnets; ++k) {
          supernet::SubnetConfig c = supernet::random_subnet(
              family->space(),
              mix(o.seed, static_cast<uint64_t>(step), static_cast<uint64_t>(k + 1)));
          SubnetRun r = make_run(family->derive(c), mode);
          distill(r);
        }
      }
      if (collective) {
        std::vector<at::Tensor> grads;
        for (at::Tensor& p : params)
          if (p.grad().defined()) grads.push_back(p.mutable_grad());
        collective->average(grads);
      }
      optimizer->step();
      ++step;
      images += x.size(0) * world;
      if (step - report.first_step == kWarmupSteps) timed_from = std::chrono::steady_clock::now();
      if (step - report.first_step > kWarmupSteps) timed_images += x.size(0) * world;
      loss_avg = step == report.first_step + 1 ? loss_value : 0.95 * loss_avg + 0.05 * loss_value;
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (rank == 0)
        progress.step(static_cast<size_t>(step),
                      fmt::format("epoch {}/{}  loss {:.3f}  {:.0f} img/s",
                                  step / per_epoch + (step % per_epoch != 0), o.epochs, loss_avg,
                                  static_cast<double>(images) / secs));
      bool epoch_end = step % per_epoch == 0;
      if (!checkpoint.empty() && rank == 0 &&
          (epoch_end || step % o.checkpoint_every == 0 || step == stop))
        save_checkpoint(checkpoint, fingerprint, step, store, *optimizer);
      if (!std::isfinite(loss_value))
        fail("training diverged at step {} (loss {}); lower --lr", step, loss_value);
    }
  }
  report.steps = step;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double timed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - timed_from).count();
  report.images_per_second = timed_images > 0 ? static_cast<double>(timed_images) / timed
                                              : static_cast<double>(images) / report.seconds;
  report.last_loss = loss_avg;
  return report;
}

std::shared_ptr<ir::Graph> recalibrate(std::shared_ptr<const ir::Graph> g, const TrainData& data,
                                       size_t images, bool measure_only, int workers) {
  auto mode = std::make_shared<exec::BatchNormMode>();
  mode->kind = measure_only ? exec::BatchNormMode::Kind::Measure : exec::BatchNormMode::Kind::Train;
  exec::Executor ex(g, {false, mode});
  std::map<int, at::Tensor> stats;  // tensor id -> fresh running statistic
  for (const ir::Node& n : g->nodes) {
    if (n.op_type != "BatchNormalization" || !n.domain.empty()) continue;
    for (size_t k : {3, 4}) {
      int id = n.inputs[k];
      if (!g->tensor(id).is_const() || stats.count(id)) continue;
      at::Tensor t = ex.constant(id).clone();
      ex.bind_constant(id, t);
      stats.emplace(id, t);
    }
  }
  auto out = std::make_shared<ir::Graph>(*g);
  if (stats.empty()) return out;
  std::vector<size_t> idx(
      data.split.calibration.begin(),
      data.split.calibration.begin() + std::min(images, data.split.calibration.size()));
  if (idx.empty()) fail("no calibration images to measure BatchNorm statistics on (--holdout)");
  data::LoaderOptions lo;
  lo.batch_size = 64;
  lo.threads = workers;
  data::Loader loader(data.source.train, idx, data.pre, lo);
  int64_t k = 0;
  while (std::optional<data::Batch> b = loader.next()) {
    mode->momentum = 1.0 / static_cast<double>(k + 1);
    ex.run({resize_to(b->images, *g)});
    ++k;
  }
  for (auto& [id, t] : stats) {
    ir::Tensor& dst = out->tensor(id);
    dst.value = exec::const_from_tensor(t);
    dst.select.clear();
  }
  return out;
}

Accuracy evaluate_on(std::shared_ptr<const ir::Graph> g, std::shared_ptr<const data::Dataset> d,
                     const std::vector<size_t>& indices, const data::Preprocess& pre,
                     int64_t batch_size, int workers) {
  exec::Executor ex(g);
  data::LoaderOptions lo;
  lo.batch_size = batch_size;
  lo.threads = workers;
  data::Loader loader(std::move(d), indices, pre, lo);
  Accuracy a;
  int64_t correct = 0;
  while (std::optional<data::Batch> b = loader.next()) {
    at::Tensor z = ex.run({resize_to(b->images, *g)})[0];
    at::Tensor ok = z.argmax(1).eq(b->labels).to(at::kByte).contiguous();
    correct += ok.sum().item<int64_t>();
    a.correct.insert(a.correct.end(), ok.data_ptr<uint8_t>(), ok.data_ptr<uint8_t>() + ok.numel());
    a.images += static_cast<size_t>(b->images.size(0));
  }
  a.top1 = a.images ? static_cast<double>(correct) / static_cast<double>(a.images) : 0.0;
  return a;
}

Accuracy evaluate(std::shared_ptr<const ir::Graph> g, const TrainData& data, int64_t batch_size,
                  int workers, size_t limit) {
  size_t n = data.source.test->size();
  if (limit > 0) n = std::min(n, limit);
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  return evaluate_on(std::move(g), data.source.test, idx, data.pre, batch_size, workers);
}

}  // namespace autotailor::train
