// `train`, `finetune` and `evaluate`: LibTorch training through the TailorIR executor.
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "autotailor/common/error.h"
#include "autotailor/common/files.h"
#include "autotailor/export/export.h"
#include "autotailor/export/onnx_writer.h"
#include "autotailor/import/onnx_import.h"
#include "autotailor/train/batchnorm.h"
#include "autotailor/train/distributed.h"
#include "commands.h"
#include "train_flags.h"

namespace autotailor::cli {

namespace fs = std::filesystem;

train::TrainData DataFlags::open(const train::ModelShape& m) const {
  train::TrainData d;
  d.source = data::open_data(spec);
  d.pre.channels = m.channels;
  d.pre.height = m.height;
  d.pre.width = m.width;
  d.pre.mean = mean.empty() ? std::vector<float>{0.0f} : mean;
  d.pre.std = std.empty() ? std::vector<float>{1.0f} : std;
  data::check_fits(d.source, d.pre, m.classes);
  size_t n = d.source.train->size();
  size_t h = holdout ? holdout : std::min<size_t>(5000, n / 10);
  if (h >= n) fail("--holdout {} leaves no training images (the training set has {})", h, n);
  d.split = data::holdout_split(*d.source.train, h, split_seed);
  d.calibration_images = calibration_images;
  spdlog::info("data: {}; {} for training, {} held out for calibration; test: {}",
               d.source.train->describe(), d.split.train.size(), d.split.calibration.size(),
               d.source.test->describe());
  return d;
}

namespace {

struct Common {
  DataFlags data;
  TrainFlags train;
  int threads = 0, nproc = 0;
  bool json = false;
  std::string output;

  void add_threads(CLI::App* cmd) {
    cmd->add_option("--threads", threads, "Intra-op threads (default: all cores)")
        ->check(CLI::Range(1, 1024));
  }
  // Explicitly, always: left alone, LibTorch's OpenMP pool was seen running on one thread.
  void apply_threads() const {
    int hw = static_cast<int>(std::thread::hardware_concurrency());
    at::set_num_threads(threads > 0 ? threads : std::max(1, hw));
  }
};

// Convs that lost their BatchNorm at export get it back, initialised from statistics measured
// on the calibration split so that the model computes what it computed before.
// `fresh`: the new BatchNorms start as PyTorch's new layers do (scale 1, bias 0), which
// changes the function; for training from random initialisation, where activations that
// grew through an unnormalised network would otherwise saturate ReLU6 and stall training.
std::shared_ptr<ir::Graph> with_batchnorm(const ir::Graph& g, const train::TrainData& d,
                                          int workers, bool fresh = false) {
  auto copy = std::make_shared<ir::Graph>(g);
  std::vector<std::string> added = train::insert_batchnorm(*copy);
  if (added.empty()) return copy;
  std::shared_ptr<ir::Graph> measured =
      train::recalibrate(copy, d, d.calibration_images, true, workers);
  if (!fresh) train::make_identity(*measured, added);
  spdlog::info("inserted {} BatchNormalization nodes after convs (statistics from {} images{})",
               added.size(), std::min(d.calibration_images, d.split.calibration.size()),
               fresh ? "; scale 1, bias 0" : "");
  return measured;
}

void print_accuracy(const std::string& what, const train::Accuracy& a, bool json,
                    nlohmann::json extra = nlohmann::json::object()) {
  if (json) {
    extra["accuracy"] = a.top1;
    extra["images"] = a.images;
    std::cout << extra.dump(2) << "\n";
  } else {
    std::cout << fmt::format("{}: top-1 accuracy {:.2f}% on {} test images\n", what, 100 * a.top1,
                             a.images);
  }
}

}  // namespace

// Data options recorded by `finetune` in DIR/finetune.json, the defaults of `evaluate DIR`.
void recorded_data_options(const std::string& dir, DataFlags& f) {
  std::string path = (fs::path(dir) / "finetune.json").string();
  if (!fs::exists(path)) return;
  nlohmann::json j = nlohmann::json::parse(read_file(path), nullptr, false);
  if (j.is_discarded() || !j.contains("data")) return;
  const nlohmann::json& d = j["data"];
  if (f.mean.empty() && d.contains("mean")) f.mean = d["mean"].get<std::vector<float>>();
  if (f.std.empty() && d.contains("std")) f.std = d["std"].get<std::vector<float>>();
  if (!f.holdout && d.contains("holdout")) f.holdout = d["holdout"].get<size_t>();
  if (!f.split_seed && d.contains("split_seed")) f.split_seed = d["split_seed"].get<uint64_t>();
  if (f.calibration_images == DataFlags{}.calibration_images && d.contains("calibration_images"))
    f.calibration_images = d["calibration_images"].get<size_t>();
}

// A subnet of a SuperNet as a graph to evaluate or export: BatchNorm statistics recalibrated
// for it on the calibration split when it has BatchNorm.
std::shared_ptr<const ir::Graph> calibrated_subnet(const supernet::Supernet& s,
                                                   const supernet::SubnetConfig& c,
                                                   const train::TrainData& d, int workers) {
  std::shared_ptr<const ir::Graph> g = s.derive(c);
  if (train::batchnorm_nodes(*g).empty()) return g;
  return train::recalibrate(g, d, d.calibration_images, false, workers);
}

std::shared_ptr<ir::Graph> import_for_training(const std::string& path) {
  std::shared_ptr<ir::Graph> g = import_onnx(path);
  const ir::Tensor& x = g->tensor(g->inputs.at(0));
  if (!g->symbolic_batch && !x.shape.empty() && x.shape[0] > 1) {
    // A fixed batch of 4 must not fix training's and search's: taken as free when the graph
    // allows it (every output's first dimension then follows the input's).
    const int64_t fixed = x.shape[0];
    std::string why;
    try {
      std::shared_ptr<ir::Graph> freed = import_onnx(path, {.free_batch = true});
      for (int o : freed->outputs)
        if (freed->tensor(o).shape.empty() || freed->tensor(o).shape[0] != 1)
          why = "output '" + freed->tensor(o).name + "' keeps it";
      if (why.empty()) g = freed;
    } catch (const Error& e) {
      why = e.what();
    }
    if (!why.empty())
      fail(
          "{}: the graph depends on its fixed batch of {} ({}); re-export it with a dynamic "
          "batch dimension",
          path, fixed, why);
    spdlog::info("{}: the fixed batch of {} is taken as a free batch dimension", path, fixed);
  }
  if (int n = ir::convert_to_float32(*g))
    spdlog::info(
        "{}: {} float16/float64 tensors converted to float32 (autotailor trains, "
        "searches and exports float32)",
        path, n);
  return g;
}

std::shared_ptr<const ir::Graph> inference_subnet(const std::string& dir,
                                                  const supernet::Supernet& s,
                                                  const supernet::SubnetConfig& c,
                                                  const std::string& data_spec) {
  std::shared_ptr<const ir::Graph> g = s.derive(c);
  if (train::batchnorm_nodes(*g).empty()) return g;
  DataFlags f;
  f.spec = data_spec;
  std::string record = (fs::path(dir) / "finetune.json").string();
  if (f.spec.empty() && fs::exists(record)) {
    nlohmann::json j = nlohmann::json::parse(read_file(record), nullptr, false);
    if (!j.is_discarded() && j.contains("data")) f.spec = j["data"].value("spec", "");
  }
  if (f.spec.empty()) {
    spdlog::warn(
        "{}: the SuperNet has BatchNorm but no data to recalibrate it on (give --data): "
        "using the running statistics as they are",
        dir);
    return g;
  }
  recorded_data_options(dir, f);
  train::TrainData d = f.open(train::model_shape(s.graph()));
  return calibrated_subnet(s, c, d, f.workers);
}

namespace {

void add_train_command(CLI::App& app) {
  auto a = std::make_shared<Common>();
  auto model = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("train", "Train a plain model (no SuperNet) and write it as ONNX");
  cmd->add_option("model", *model, "ONNX image classifier")->required()->check(CLI::ExistingFile);
  cmd->add_option("-o,--output", a->output, "Trained model (.onnx)")->required();
  a->data.add(cmd);
  a->train.add(cmd);
  a->add_threads(cmd);
  cmd->add_option("--nproc", a->nproc, "Data-parallel processes on this machine")
      ->check(CLI::Range(1, 64));
  cmd->add_flag("--json", a->json, "Print the result as JSON");
  auto fresh = std::make_shared<bool>(false);
  cmd->add_flag("--fresh-batchnorm", *fresh,
                "Inserted BatchNorms start at scale 1, bias 0 (training from random "
                "initialisation) instead of preserving the model's function");
  cmd->callback([a, model, fresh] {
    a->apply_threads();
    DistributedLaunch launch = launch_processes(a->nproc);
    if (launch.parent_done) return;
    std::shared_ptr<const ir::Graph> g = import_for_training(*model);
    train::ModelShape ms = train::model_shape(*g);
    fs::path out(a->output);
    if (out.has_parent_path()) ensure_writable_dir(out.parent_path().string());
    train::TrainData d = a->data.open(ms);
    std::shared_ptr<const ir::Graph> graph = with_batchnorm(*g, d, a->data.workers, *fresh);
    train::ParameterStore store(*graph);
    std::string ckpt = a->output + ".ckpt";
    train::TrainReport r =
        train::fit(graph, nullptr, store, d, a->train.o, ckpt, launch.collective.get());
    if (launch.collective && launch.collective->rank() != 0) return;
    std::shared_ptr<ir::Graph> trained = store.write_back(*graph);
    fold_batchnorm(*trained);
    remove_identities(*trained);
    save_onnx(*trained, a->output);
    fs::remove(ckpt);
    spdlog::info("wrote {} ({} steps, {:.0f} img/s)", a->output, r.steps, r.images_per_second);
    train::Accuracy acc = train::evaluate(import_onnx(a->output), d, 256, a->data.workers);
    print_accuracy(
        a->output, acc, a->json,
        {{"model", a->output}, {"steps", r.steps}, {"images_per_second", r.images_per_second}});
  });
}

void add_finetune_command(CLI::App& app) {
  auto a = std::make_shared<Common>();
  auto dir = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand(
      "finetune", "Fine-tune a SuperNet directory in place (sandwich rule, in-place distillation)");
  cmd->add_option("dir", *dir, "Directory made by `supernet`")->required();
  a->data.add(cmd);
  a->train.add(cmd);
  a->train.o.lr = 0;
  cmd->add_option("--random-subnets", a->train.o.random_subnets,
                  "Random subnets per step besides the max and min ones")
      ->check(CLI::Range(0, 16));
  a->add_threads(cmd);
  cmd->add_option("--nproc", a->nproc, "Data-parallel processes on this machine")
      ->check(CLI::Range(1, 64));
  cmd->add_flag("--json", a->json, "Print the result as JSON");
  cmd->callback([a, dir] {
    a->apply_threads();
    // Held by the launching process for the workers' lifetime (they inherit it).
    DirLock lock(*dir);
    DistributedLaunch launch = launch_processes(a->nproc);
    if (launch.parent_done) return;
    nlohmann::json record = finetune_dir(*dir, a->data, a->train.o, launch.collective.get());
    if (launch.collective && launch.collective->rank() != 0) return;
    if (a->json) {
      std::cout << record.dump(2) << "\n";
      return;
    }
    std::cout << fmt::format("fine-tuned {} in {} steps ({:.0f} img/s): max {:.2f}%, min {:.2f}%\n",
                             *dir, record["steps"].get<int64_t>(),
                             record["images_per_second"].get<double>(),
                             100 * record["accuracy"]["max"].get<double>(),
                             100 * record["accuracy"]["min"].get<double>());
  });
}

}  // namespace

nlohmann::json finetune_dir(const std::string& dir, const DataFlags& flags,
                            const train::TrainOptions& options, train::Collective* collective) {
  bool lead = !collective || collective->rank() == 0;
  supernet::Supernet s = supernet::Supernet::load(dir);
  train::ModelShape ms = train::model_shape(s.graph());
  train::TrainData d = flags.open(ms);
  std::string space_path = (fs::path(dir) / "space.json").string();
  {
    // BatchNorm back after the convs that lost it; the SuperNet is saved with it, so that
    // a resumed run starts from the same graph.
    std::shared_ptr<ir::Graph> g = with_batchnorm(s.graph(), d, flags.workers);
    if (g->nodes.size() != s.graph().nodes.size()) {
      supernet::Supernet with_bn(g, s.options());
      supernet::apply_space_json(with_bn.space(), read_file(space_path), space_path);
      if (lead) with_bn.save(dir);
      s = std::move(with_bn);
    }
  }
  train::ParameterStore store(s.graph());
  std::string ckpt = (fs::path(dir) / "finetune.ckpt").string();
  train::TrainReport r = train::fit(s.graph_ptr(), &s, store, d, options, ckpt, collective);
  if (!lead) return {};
  std::shared_ptr<ir::Graph> tuned = store.write_back(s.graph());
  nlohmann::json record = {{"format", "autotailor-finetune"},
                           {"data",
                            {{"spec", flags.spec},
                             {"mean", d.pre.mean},
                             {"std", d.pre.std},
                             {"holdout", d.split.calibration.size()},
                             {"calibration_images", d.calibration_images},
                             {"split_seed", flags.split_seed}}},
                           {"options", options.fingerprint()},
                           {"steps", r.steps},
                           {"images_per_second", r.images_per_second}};
  supernet::Supernet result(tuned, s.options());
  supernet::apply_space_json(result.space(), read_file(space_path), space_path);
  nlohmann::json acc = nlohmann::json::object();
  for (const char* which : {"max", "min"}) {
    supernet::SubnetConfig c = supernet::parse_subnet_spec(which, result.space());
    train::Accuracy x =
        train::evaluate(calibrated_subnet(result, c, d, flags.workers), d, 256, flags.workers);
    acc[which] = x.top1;
    spdlog::info("{} subnet: top-1 {:.2f}% on {} test images", which, 100 * x.top1, x.images);
  }
  record["accuracy"] = acc;
  write_file_atomic((fs::path(dir) / "finetune.json").string(), record.dump(2) + "\n");
  save_onnx(*tuned, (fs::path(dir) / "supernet.onnx").string());
  fs::remove(ckpt);
  return record;
}

namespace {

void add_evaluate_command(CLI::App& app) {
  auto a = std::make_shared<Common>();
  auto target = std::make_shared<std::string>();
  auto subnet = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("evaluate", "Top-1 accuracy on the test split");
  cmd->add_option("model", *target, "ONNX model, or a directory made by `supernet`")->required();
  cmd->add_option("--subnet", *subnet,
                  "With a directory: max, min, mid, random:SEED or a JSON file");
  a->data.add(cmd);
  a->add_threads(cmd);
  cmd->add_option("--batch", a->train.o.batch_size, "Evaluation batch size")
      ->check(CLI::Range(1, 65536));
  cmd->add_flag("--json", a->json, "Print the result as JSON");
  a->train.o.batch_size = 256;
  cmd->callback([a, target, subnet] {
    a->apply_threads();
    if (!fs::is_directory(*target)) {
      if (!subnet->empty())
        usage_fail("--subnet needs a SuperNet directory; '{}' is a model file", *target);
      std::shared_ptr<const ir::Graph> g = import_onnx(*target);
      train::TrainData d = a->data.open(train::model_shape(*g));
      train::Accuracy acc = train::evaluate(g, d, a->train.o.batch_size, a->data.workers);
      return print_accuracy(*target, acc, a->json, {{"model", *target}});
    }
    recorded_data_options(*target, a->data);
    supernet::Supernet s = supernet::Supernet::load(*target);
    train::TrainData d = a->data.open(train::model_shape(s.graph()));
    std::string spec = subnet->empty() ? "max" : *subnet;
    supernet::SubnetConfig c = supernet::parse_subnet_spec(spec, s.space());
    auto g = calibrated_subnet(s, c, d, a->data.workers);
    train::Accuracy acc = train::evaluate(g, d, a->train.o.batch_size, a->data.workers);
    print_accuracy(fmt::format("{} subnet {}", *target, spec), acc, a->json,
                   {{"model", *target},
                    {"subnet", nlohmann::json::parse(supernet::subnet_to_json(c))},
                    {"batchnorm_recalibrated", !train::batchnorm_nodes(*g).empty()}});
  });
}

}  // namespace

void add_train(CLI::App& app) {
  add_train_command(app);
  add_finetune_command(app);
  add_evaluate_command(app);
}

}  // namespace autotailor::cli
