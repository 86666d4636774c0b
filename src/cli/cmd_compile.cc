// `compile`: every stage in order (import, supernet, finetune, profile, sensitivity, search,
// export), each skipped when a previous run finished it with the same inputs and options
// (content hashes in DIR/stages.json), so a job that fails late costs little.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "../common/json_document.h"
#include "autotailor/common/error.h"
#include "autotailor/common/files.h"
#include "autotailor/common/hash.h"
#include "autotailor/exec/executor.h"
#include "autotailor/exec/timing.h"
#include "autotailor/export/export.h"
#include "autotailor/import/onnx_import.h"
#include "autotailor/ir/dump.h"
#include "autotailor/latency/device.h"
#include "autotailor/latency/latency.h"
#include "autotailor/search/search.h"
#include "commands.h"
#include "ort_runner.h"
#include "report.h"
#include "space_flags.h"
#include "train_flags.h"

namespace autotailor::cli {

namespace {

namespace fs = std::filesystem;

std::string fnv(const std::string& text) {
  return fnv1a64_hex(text);
}

struct CompileArgs {
  std::string model, device, out;
  BudgetFlags budgets;
  bool dump_ir = false;
  int threads = 0;
  size_t probe_images = 3000;
  std::string sensitivity_reference = search::kDefaultReference;
  SpaceFlags space;
  DataFlags data;
  TrainFlags train;
  search::EvolutionOptions evolution;
};

// DIR/stages.json: the input hash of every finished stage and the SHA-256 of each file it
// wrote. A stage is done when its input hash matches and its files are still what it wrote:
// a file deleted, emptied or replaced since makes the stage run again.
class StageRecord {
 public:
  explicit StageRecord(std::string dir)
      : dir_(dir), path_((fs::path(dir) / "stages.json").string()) {
    if (fs::exists(path_)) {
      j_ = nlohmann::json::parse(read_file(path_), nullptr, false);
      if (j_.is_discarded() || !j_.is_object()) {
        spdlog::warn("{} is not valid JSON: every stage runs again", path_);
        j_ = nlohmann::json::object();
      }
    }
  }
  bool done(const std::string& stage, const std::string& hash) const {
    return j_.contains(stage) && j_[stage].is_object() && j_[stage].value("hash", "") == hash &&
           outputs_intact(stage);
  }
  // Every file the stage recorded is there with the recorded SHA-256 (logs the first that
  // is not).
  bool outputs_intact(const std::string& stage) const {
    // Verified once per run (supernet.onnx is checked for two stages): finish and forget_from
    // drop the memo of what they change.
    auto memo = intact_.find(stage);
    if (memo != intact_.end()) return memo->second;
    return intact_[stage] = verify_outputs(stage);
  }
  bool verify_outputs(const std::string& stage) const {
    if (!j_.contains(stage) || !j_[stage].is_object()) return true;
    const nlohmann::json outputs = j_[stage].value("outputs", nlohmann::json::object());
    if (!outputs.is_object()) return false;
    for (const auto& [file, sha] : outputs.items()) {
      fs::path p = fs::path(dir_) / file;
      std::error_code ec;
      if (!fs::is_regular_file(fs::symlink_status(p, ec)) || !sha.is_string() ||
          sha256_file(p.string()) != sha.get<std::string>()) {
        spdlog::warn("[{}] {} is missing or changed since this stage wrote it: running it again",
                     stage, p.string());
        return false;
      }
    }
    return true;
  }
  std::string hash(const std::string& stage) const {
    return j_.contains(stage) && j_[stage].is_object() ? j_[stage].value("hash", "") : "";
  }
  void finish(const std::string& stage, const std::string& hash, double seconds,
              const std::vector<std::string>& outputs = {}) {
    nlohmann::json files = nlohmann::json::object();
    for (const std::string& f : outputs) files[f] = sha256_file((fs::path(dir_) / f).string());
    j_[stage] = {{"hash", hash}, {"seconds", seconds}, {"outputs", files}};
    intact_.erase(stage);
    write_file_atomic(path_, j_.dump(2) + "\n");
  }
  void forget_from(const std::vector<std::string>& stages) {
    for (const auto& s : stages) {
      j_.erase(s);
      intact_.erase(s);
    }
    write_file_atomic(path_, j_.dump(2) + "\n");
  }
  double seconds(const std::string& stage) const {
    return j_.contains(stage) && j_[stage].is_object() ? j_[stage].value("seconds", 0.0) : 0.0;
  }

 private:
  std::string dir_, path_;
  nlohmann::json j_ = nlohmann::json::object();
  mutable std::map<std::string, bool> intact_;
};

void dump_ir(const std::string& dir, const std::string& stage, const ir::Graph& g) {
  fs::path d = fs::path(dir) / "ir";
  fs::create_directories(d);
  write_file_atomic((d / (stage + ".txt")).string(), ir::dump_text(g));
  write_file_atomic((d / (stage + ".json")).string(), ir::dump_json(g) + "\n");
  write_file_atomic((d / (stage + ".dot")).string(), ir::dump_dot(g));
}

double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

void compile(const CompileArgs& a) {
  int hw = static_cast<int>(std::thread::hardware_concurrency());
  int threads = a.threads > 0 ? a.threads : std::max(1, hw);
  at::set_num_threads(threads);
  latency::Device device = latency::find_device(a.device);
  ensure_writable_dir(a.out);
  DirLock lock(a.out);
  const std::string dir = a.out;
  refuse_same_file((fs::path(dir) / "supernet.onnx").string(), a.model, "the input model");
  std::error_code ec;
  fs::path model_dir = fs::path(a.model).parent_path();
  if (fs::equivalent(model_dir.empty() ? "." : model_dir, fs::path(dir) / "variants", ec))
    fail("{}: the input model sits in {}/variants, which compile rewrites: move it out first",
         a.model, dir);
  StageRecord rec(dir);
  const std::vector<std::string> order = {"supernet",    "finetune", "profile",
                                          "sensitivity", "search",   "export"};
  auto rerun_from = [&](const std::string& stage) {
    auto it = std::find(order.begin(), order.end(), stage);
    rec.forget_from(std::vector<std::string>(it, order.end()));
  };

  // import
  auto t0 = std::chrono::steady_clock::now();
  std::string model_bytes = read_file(a.model);
  std::shared_ptr<ir::Graph> g = import_for_training(a.model);
  train::model_shape(*g);  // an image classifier, or a clear error now rather than later
  if (a.dump_ir) dump_ir(dir, "import", *g);
  spdlog::info("[import] {}: {} nodes, {} parameters ({:.1f} s)", a.model, g->nodes.size(),
               g->parameter_count(), since(t0));

  // supernet
  supernet::SpaceOptions so = a.space.resolved();
  std::string h_supernet =
      fnv(fnv(model_bytes) +
          fmt::format("|{}|{}|{}|{}|{}|{}|{}|{}", fmt::join(so.width_ratios, ","),
                      so.width_multiple, so.resolutions, so.elastic_width, so.elastic_depth,
                      so.elastic_kernel, so.elastic_resolution, fmt::join(so.freeze, ",")) +
          (a.space.config.empty() ? "" : read_file(a.space.config)));
  // Fine-tuning rewrites supernet.onnx: other fine-tuning options need a fresh SuperNet.
  bool with_data = !a.data.spec.empty() && a.train.o.epochs > 0;
  std::string h_finetune =
      fnv(h_supernet +
          (with_data ? fmt::format("|{}|{}|{}|{}|{}|{}", a.data.spec, fmt::join(a.data.mean, ","),
                                   fmt::join(a.data.std, ","), a.data.holdout, a.data.split_seed,
                                   a.train.o.fingerprint())
                     : "|none"));
  bool stale_finetune = !rec.hash("finetune").empty() && rec.hash("finetune") != h_finetune;
  t0 = std::chrono::steady_clock::now();
  if (!rec.done("supernet", h_supernet) || stale_finetune ||
      !fs::exists(fs::path(dir) / "supernet.onnx") || !rec.outputs_intact("finetune")) {
    rerun_from("supernet");
    fs::remove(fs::path(dir) / "finetune.ckpt");
    fs::remove(fs::path(dir) / "finetune.json");
    make_supernet(g, dir, a.space);
    rec.finish("supernet", h_supernet, since(t0));
  } else {
    spdlog::info("[supernet] reusing {}/supernet.onnx", dir);
  }
  if (a.dump_ir) dump_ir(dir, "supernet", supernet::Supernet::load(dir).graph());

  // finetune
  t0 = std::chrono::steady_clock::now();
  if (!with_data) {
    if (a.data.spec.empty())
      spdlog::warn(
          "[finetune] skipped: no --data. Subnets keep the original weights and the "
          "accuracy predictor measures agreement with the max subnet on synthetic "
          "inputs (a proxy, not accuracy)");
    else
      spdlog::info("[finetune] skipped (--epochs 0)");
    if (!rec.done("finetune", h_finetune))
      rec.finish("finetune", h_finetune, 0, {"supernet.onnx", "space.json"});
  } else if (!rec.done("finetune", h_finetune)) {
    rerun_from("finetune");
    finetune_dir(dir, a.data, a.train.o, nullptr);
    rec.finish("finetune", h_finetune, since(t0), {"supernet.onnx", "space.json", "finetune.json"});
  } else {
    spdlog::info("[finetune] reusing the fine-tuned SuperNet");
  }
  supernet::Supernet s = supernet::Supernet::load(dir);
  if (a.dump_ir && with_data) dump_ir(dir, "finetune", s.graph());

  // profile
  t0 = std::chrono::steady_clock::now();
  std::string h_profile = fnv(h_finetune + "|" + device.name + "|" + std::to_string(threads));
  if (!rec.done("profile", h_profile) || !fs::exists(latency::lut_path(dir, device.name))) {
    rerun_from("profile");
    profile_device(s, dir, device.name, threads);
    rec.finish("profile", h_profile, since(t0),
               {fs::path(latency::lut_path(dir, device.name)).filename().string()});
  } else {
    spdlog::info("[profile] reusing {}", latency::lut_path(dir, device.name));
  }

  // sensitivity (accuracy predictor)
  t0 = std::chrono::steady_clock::now();
  std::string h_sens = fnv(h_finetune + "|" + a.data.spec + "|" + std::to_string(a.probe_images) +
                           "|" + a.sensitivity_reference);
  if (!rec.done("sensitivity", h_sens) || !fs::exists(sensitivity_path(dir))) {
    rerun_from("sensitivity");
    measure_sensitivity(s, dir, a.data, a.probe_images, a.sensitivity_reference);
    rec.finish("sensitivity", h_sens, since(t0), {"sensitivity.json"});
  } else {
    spdlog::info("[sensitivity] reusing {}", sensitivity_path(dir));
  }

  // search
  t0 = std::chrono::steady_clock::now();
  supernet::Supernet lat = latency_view(s);
  latency::LatencyTable lut = latency::load_lut(dir, device.name);
  latency::LatencyModel lm(lat, lut);
  double max_ms = lm.predict(supernet::max_subnet(lat.space()));
  std::vector<double> default_ms;
  for (double f : {0.3, 0.5, 0.7, 0.9}) default_ms.push_back(f * max_ms);
  Budgets budgets = a.budgets.resolve(lat, default_ms);
  const latency::LatencyModel unit_model =
      budgets.unit == "ms"     ? lm
      : budgets.unit == "macs" ? latency::LatencyModel(lat, latency::Count::Macs)
                               : latency::LatencyModel(lat, latency::Count::Parameters);
  const double max_cost = unit_model.predict(supernet::max_subnet(lat.space()));
  const double min_cost = unit_model.predict(supernet::min_subnet(lat.space()));
  for (double& b : budgets.values)
    if (b < min_cost) {
      spdlog::warn(
          "[search] budget {} is below the smallest subnet's {}: using the smallest subnet",
          format_budget(b, budgets.unit), format_budget(min_cost, budgets.unit));
      b = min_cost;
    }
  std::string h_search =
      fnv(h_profile + h_sens + search::AccuracyOptions{}.fingerprint() + "|ties-larger" +
          fmt::format("|{}:{}|{}|{}", budgets.unit, fmt::join(budgets.values, ","),
                      budgets.max_macs, budgets.max_params) +
          fmt::format("|{}|{}|{}|{}|{}|{}|rerank{}", a.evolution.population,
                      a.evolution.generations, a.evolution.parent_ratio, a.evolution.mutation_ratio,
                      a.evolution.mutate_prob, a.evolution.seed, a.evolution.finalists));
  std::string search_path = (fs::path(dir) / "search.json").string();
  nlohmann::json found;
  if (!rec.done("search", h_search) || !fs::exists(search_path)) {
    rerun_from("search");
    std::unique_ptr<AccuracyProbe> probe;
    if (a.evolution.finalists > 1)
      probe = std::make_unique<AccuracyProbe>(
          s, dir, a.data, search::SensitivityTable::load(sensitivity_path(dir)).probe_images);
    found = run_search(s, dir, device.name, budgets, a.evolution, probe.get());
    write_file_atomic(search_path, found.dump(2) + "\n");
    rec.finish("search", h_search, since(t0), {"search.json"});
  } else {
    spdlog::info("[search] reusing {}", search_path);
    found =
        parse_document(read_file(search_path), search_path, "autotailor-search", "a search result");
  }

  // export
  t0 = std::chrono::steady_clock::now();
  std::string h_export = fnv(h_search);
  if (rec.done("export", h_export)) {
    spdlog::info("[export] reusing {}/manifest.json", dir);
  } else {
    rerun_from("export");
    fs::create_directories(fs::path(dir) / "variants");
    std::optional<train::TrainData> data;
    if (!a.data.spec.empty()) {
      DataFlags f = a.data;
      recorded_data_options(dir, f);
      data = f.open(train::model_shape(s.graph()));
    }
    search::SensitivityTable sens = search::SensitivityTable::load(sensitivity_path(dir));
    // One file per distinct subnet, listing every budget it serves (smallest first).
    const auto& results = found["results"];
    std::vector<size_t> by_budget(results.size());
    for (size_t i = 0; i < by_budget.size(); ++i) by_budget[i] = i;
    std::stable_sort(by_budget.begin(), by_budget.end(), [&](size_t x, size_t y) {
      return results[x]["budget"].get<double>() < results[y]["budget"].get<double>();
    });
    std::vector<std::vector<size_t>> members;  // result indices per distinct subnet
    for (size_t i : by_budget) {
      auto same = std::find_if(members.begin(), members.end(), [&](const auto& m) {
        return results[m.front()]["subnet"] == results[i]["subnet"];
      });
      if (same == members.end())
        members.push_back({i});
      else
        same->push_back(i);
    }
    nlohmann::json variants = nlohmann::json::array();
    std::set<std::string> written;
    for (size_t k = 0; k < members.size(); ++k) {
      const auto& r = results[members[k].front()];
      nlohmann::json budgets_served = nlohmann::json::array();
      for (size_t i : members[k]) budgets_served.push_back(results[i]["budget"]);
      if (members[k].size() > 1)
        spdlog::warn(
            "[export] budgets {} ({}) get the same subnet (nothing better measured within the "
            "larger ones): one file serves them all",
            budgets_served.dump(), budgets.unit);
      supernet::SubnetConfig c =
          supernet::subnet_from_json(r["subnet"].dump(), search_path, s.space());
      std::string name = fmt::format("variant{}_{:.0f}pct.onnx", k + 1,
                                     100 * r["budget"].get<double>() / max_cost);
      written.insert(name);
      std::string file = (fs::path(dir) / "variants" / name).string();
      std::shared_ptr<const ir::Graph> vg = inference_subnet(dir, s, c, a.data.spec);
      export_graph(*vg, s.graph().name, file);
      std::shared_ptr<const ir::Graph> exported = import_onnx(file);
      if (a.dump_ir) dump_ir(dir, fmt::format("export_variant{}", k + 1), *exported);
      nlohmann::json v = {
          {"file", fs::path("variants") / name},
          {"subnet", r["subnet"]},
          {"budget", r["budget"]},
          {"budgets", budgets_served},
          {"budget_unit", budgets.unit},
          {"predicted_latency_ms", r["latency_ms"]},
          {"predicted_macs", r["macs"]},
          {"predicted_parameters", r["parameters"]},
          {"predicted_accuracy", r["accuracy"]},
          {"reranked_accuracy", r.value("measured_probe_accuracy", nlohmann::json())},
          {"accuracy_metric", sens.metric},
          {"macs", ir::graph_stats(*exported).macs},
          {"parameters", exported->parameter_count()},
          {"measured_accuracy", nullptr},
          {"measured_latency_ms", nullptr}};
      if (data) v["measured_accuracy"] = train::evaluate(exported, *data, 256, a.data.workers).top1;
      if (device.kind == "measured") {
        at::set_num_threads(lut.threads);
        exec::Executor ex(exported);
        v["measured_latency_ms"] =
            exec::time_runs(ex, exec::random_inputs(*exported, 1), 3, 10, 200.0, 100).median_ms;
        at::set_num_threads(threads);
      } else if (device.kind == "ort") {
        v["measured_latency_ms"] = ort_median_ms(file, lut.threads, 30);
      }
      if (budgets.unit == "ms") {
        v["budget_ms"] = v["budget"];
        v["budgets_ms"] = budgets_served;
      }
      // MACs and parameter budgets are met exactly: the search's counts are the file's.
      for (const char* count : {"macs", "parameters"})
        if (v[count] != r[count])
          fail("internal: {} has {} {}, the search counted {}", file, v[count].dump(), count,
               r[count].dump());
      spdlog::info(
          "[export] {}: budget {}, predicted {:.3f} ms{}{}", file,
          format_budget(r["budget"].get<double>(), budgets.unit), r["latency_ms"].get<double>(),
          v["measured_latency_ms"].is_null()
              ? ""
              : fmt::format(", measured {:.3f} ms", v["measured_latency_ms"].get<double>()),
          v["measured_accuracy"].is_null()
              ? ""
              : fmt::format(", accuracy {:.2f}%", 100 * v["measured_accuracy"].get<double>()));
      v["sha256"] = sha256_file(file);
      variants.push_back(v);
    }
    // Variants of an earlier family that this one no longer has.
    for (const auto& f : fs::directory_iterator(fs::path(dir) / "variants"))
      if (f.path().extension() == ".onnx" && !written.count(f.path().filename().string()))
        fs::remove(f.path());
    bool estimated = std::any_of(lut.entries.begin(), lut.entries.end(),
                                 [](const auto& e) { return e.second.estimated; });
    nlohmann::json stages = nlohmann::json::object();
    for (const auto& st : order) stages[st] = rec.seconds(st);
    stages["export"] = since(t0);
    nlohmann::json manifest = {
        {"format", "autotailor-manifest"},
        {"model", a.model},
        {"device", device.name},
        {"device_kind", device.kind},
        {"estimated_latency", estimated},
        {"accuracy_metric", sens.metric},
        {"budget_unit", budgets.unit},
        {"limits", found.value("limits", nlohmann::json::object())},
        {"max_subnet",
         {{"predicted_latency_ms", max_ms},
          {"macs", found["max_subnet"].value("macs", nlohmann::json())},
          {"parameters", found["max_subnet"].value("parameters", nlohmann::json())},
          {"predicted_accuracy", found["max_subnet"]["accuracy"]},
          {"reranked_accuracy",
           found["max_subnet"].value("measured_probe_accuracy", nlohmann::json())}}},
        {"rerank", found.value("rerank", nlohmann::json())},
        {"variants", variants},
        {"stage_seconds", stages}};
    write_file_atomic((fs::path(dir) / "manifest.json").string(), manifest.dump(2) + "\n");
    write_file_atomic((fs::path(dir) / "report.html").string(),
                      render_report(manifest, found, sens, lat, lut));
    std::vector<std::string> outputs = {"manifest.json", "report.html"};
    for (const auto& v : variants) outputs.push_back(v["file"].get<std::string>());
    rec.finish("export", h_export, since(t0), outputs);
  }
  // Success only if every file the manifest names is there and is what it records.
  const std::string manifest_path = (fs::path(dir) / "manifest.json").string();
  nlohmann::json m =
      parse_document(read_file(manifest_path), manifest_path, "autotailor-manifest", "a manifest");
  for (const auto& v : m["variants"]) {
    std::string f = (fs::path(dir) / v["file"].get<std::string>()).string();
    if (!fs::exists(f) || sha256_file(f) != v.value("sha256", ""))
      fail("{}: {} is missing or does not match its sha256 in the manifest", manifest_path, f);
  }
  std::string est = m["estimated_latency"].get<bool>() ? " (estimated)" : "";
  std::cout << fmt::format("{} variants of {} for {} in {}/variants:\n", m["variants"].size(),
                           a.model, device.name, dir);
  const std::string unit = m.value("budget_unit", "ms");
  for (const auto& v : m["variants"]) {
    std::string served;
    for (const auto& b : v["budgets"])
      if (b != v["budget"]) served += ", " + format_budget(b.get<double>(), unit);
    std::cout << fmt::format(
        "  {:<28} budget {}{}  predicted {:.3f} ms{}{}  accuracy {}", v["file"].get<std::string>(),
        format_budget(v["budget"].get<double>(), unit), served,
        v["predicted_latency_ms"].get<double>(), est,
        unit == "ms" ? "" : ", " + format_budget(v[unit].get<double>(), unit),
        fmt::format("{:.2f}% predicted{}", 100 * v["predicted_accuracy"].get<double>(),
                    m["accuracy_metric"] == "top1" ? "" : " (agreement proxy)"));
    if (!v["measured_accuracy"].is_null())
      std::cout << fmt::format(", {:.2f}% measured", 100 * v["measured_accuracy"].get<double>());
    if (!v["measured_latency_ms"].is_null())
      std::cout << fmt::format(", {:.3f} ms measured", v["measured_latency_ms"].get<double>());
    std::cout << "\n";
  }
  std::cout << fmt::format("manifest: {}/manifest.json, report: {}/report.html\n", dir, dir);
}

}  // namespace

void add_compile(CLI::App& app) {
  auto a = std::make_shared<CompileArgs>();
  auto* cmd = app.add_subcommand(
      "compile", "Every stage: a family of variants fitted to latency budgets on a device");
  cmd->add_option("model", a->model, "ONNX image classifier")->required()->check(CLI::ExistingFile);
  cmd->add_option("--device", a->device, "Target device (see `devices`)")->required();
  cmd->add_option("-o,--output", a->out, "Output directory")->required();
  a->budgets.add(cmd, "Latency budgets (default: 30/50/70/90% of the max subnet's prediction)");
  cmd->add_flag("--dump-ir", a->dump_ir, "Write TailorIR dumps (text, JSON, DOT) after each stage");
  cmd->add_option("--threads", a->threads, "Threads for training and host profiling")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--probe-images", a->probe_images, "Held-out images per sensitivity probe")
      ->check(CLI::Range(16, 1000000));
  cmd->add_option("--sensitivity-reference", a->sensitivity_reference,
                  "Subnet the sensitivity probes start from: max or mid")
      ->check(CLI::IsMember({"max", "mid"}));
  cmd->add_option("--population", a->evolution.population)->check(CLI::Range(2, 100000));
  cmd->add_option("--generations", a->evolution.generations)->check(CLI::Range(0, 100000));
  cmd->add_option("--search-seed", a->evolution.seed);
  a->evolution.finalists = 8;
  cmd->add_option("--rerank", a->evolution.finalists,
                  "Finalists per budget evaluated exactly on the held-out probe images; the best "
                  "measured becomes the variant (0 or 1: the predictor's pick)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  a->space.add(cmd);
  a->data.add(cmd, false);
  a->train.add(cmd);
  cmd->callback([a] { compile(*a); });
}

}  // namespace autotailor::cli
