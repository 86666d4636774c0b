#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "autotailor/common/error.h"
#include "autotailor/common/files.h"
#include "autotailor/common/progress.h"
#include "autotailor/exec/timing.h"
#include "autotailor/export/export.h"
#include "autotailor/import/onnx_import.h"
#include "autotailor/ir/dump.h"
#include "autotailor/latency/bundle.h"
#include "autotailor/latency/device.h"
#include "autotailor/latency/latency.h"
#include "autotailor/train/batchnorm.h"
#include "commands.h"
#include "ort_runner.h"
#include "train_flags.h"

namespace autotailor::cli {

namespace {

// The per-model calibration a profile fitted, into its table.
void set_calibration(latency::LatencyTable& lut, const latency::OverheadScale& fit) {
  lut.overhead_ms = fit.overhead_ms;
  lut.scale = fit.scale;
  lut.floor_ratio = fit.floor_ratio;
}

std::string now_utc() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

struct LatencyArgs {
  std::string dir, device = "host", subnet = "max";
  int threads = 1, samples = 20;
  bool once = false;  // validate-latency: no repeatability re-measurement
  bool json = false;
  std::string method = "context";
  std::string bundle, shard = "0/1", runtime;
  std::vector<std::string> imports;
};

// Configurations missing from a device's LUT get analytic estimates (marked) when the device
// has a descriptor; the count is returned.
size_t fill_estimates(const latency::Device& dev, const latency::SpaceConfigs& cs,
                      latency::LatencyTable& lut) {
  if (dev.kind != "estimated") return 0;
  size_t n = 0;
  for (const auto& c : cs.configs)
    if (!lut.entries.count(c.key)) {
      lut.entries[c.key] = latency::estimate(dev, *c.graph);
      ++n;
    }
  return n;
}

std::string temp_model(const std::string& what) {
  return (std::filesystem::temp_directory_path() /
          fmt::format("autotailor-{}.{}.onnx", what, ::getpid()))
      .string();
}

// The device's speed while a host LUT is measured: the max subnet, exported as users get it,
// timed whole. The isolated method samples it at intervals through the profile; the context
// method times a block of it right after every covering subnet's block and measures entries in
// its units. validate-latency times the same model next to its subnets.
class SpeedReference {
 public:
  explicit SpeedReference(const supernet::Supernet& s) : s_(s) {}
  // A short median, recorded: one sample of the device's speed.
  void sample() { ms_.push_back(time(3, 5, 20.0, 20)); }
  // One warm block (a warm-up run, then kProfileBlockRuns), recorded and returned: the unit
  // of the covering subnet measured just before it.
  double block() {
    ms_.push_back(time(1, kProfileBlockRuns, 0.0, kProfileBlockRuns));
    return ms_.back();
  }
  // Runs per block: in the profile after every covering subnet; in validate-latency after
  // every round of every subnet, unchanged since that protocol is the truth every LUT and
  // bench/latency.py's learners are scored against.
  static constexpr int kProfileBlockRuns = 3;
  static constexpr int kValidationBlockRuns = 5;
  double median() const { return exec::summarize(ms_).median_ms; }
  int samples() const { return static_cast<int>(ms_.size()); }
  // Samples so that about `n` are spread over `steps` steps of work: is step i one of them?
  static bool due(size_t i, size_t steps, size_t n = 10) {
    return i % std::max<size_t>(1, steps / n) == 0;
  }
  void store(latency::LatencyTable& lut) const {
    if (ms_.empty()) return;
    lut.reference_ms = median();
    lut.reference_samples = samples();
    spdlog::debug("speed reference samples (ms): {}", fmt::join(ms_, " "));
  }

 private:
  double time(int warmup, int runs, double min_ms, int max_runs) {
    if (!ex_) {  // exported on first use: a profile with nothing to measure pays nothing
      std::string file = temp_model("reference");
      export_subnet(s_, supernet::max_subnet(s_.space()), file);
      std::shared_ptr<const ir::Graph> g = import_onnx(file);
      std::filesystem::remove(file);
      ex_ = std::make_unique<exec::Executor>(g);
      in_ = exec::random_inputs(*g, 1);
    }
    return exec::time_runs(*ex_, in_, warmup, runs, min_ms, max_runs).median_ms;
  }

  const supernet::Supernet& s_;
  std::unique_ptr<exec::Executor> ex_;
  std::vector<at::Tensor> in_;
  std::vector<double> ms_;
};

// Predicted against measured over validation subnets.
struct Score {
  double se = 0, ape = 0;
  int n = 0, within5 = 0, within10 = 0;
  void add(double predicted, double measured) {
    double err = std::fabs(predicted - measured) / measured;
    se += (predicted - measured) * (predicted - measured);
    ape += err;
    within5 += err <= 0.05;
    within10 += err <= 0.10;
    ++n;
  }
  double share(int k) const { return n ? static_cast<double>(k) / n : 0.0; }
  double rmse() const { return n ? std::sqrt(se / n) : 0.0; }
  nlohmann::json json() const {
    return {{"rmse_ms", rmse()},
            {"mape", n ? ape / n : 0.0},
            {"within_5pct", share(within5)},
            {"within_10pct", share(within10)}};
  }
  std::string text() const {
    return fmt::format(
        "RMSE {:.3f} ms, mean abs error {:.1f}%, within 5%: {:.0f}%, within 10%: {:.0f}%", rmse(),
        n ? 100 * ape / n : 0.0, 100 * share(within5), 100 * share(within10));
  }
};

}  // namespace

void write_device_bundle(const supernet::Supernet& tuned, const std::string& device,
                         const std::string& out, const std::string& shard) {
  supernet::Supernet s = latency_view(tuned);
  latency::Device dev = latency::find_device(device);
  auto [i, n] = latency::parse_shard(shard);
  latency::SpaceConfigs cs = latency::unique_configs(s);
  latency::BundleInfo b = latency::write_bundle(cs, dev.name, out, i, n, &s);
  spdlog::info(
      "wrote {}/manifest.json: {} of {} operator configurations (shard {}/{}) as standalone "
      "ONNX models, {} two-step models for the fusion-rule test (of {} boundaries between "
      "steps), {} whole calibration subnets "
      "and the call-overhead model. Time each on {} (CSV columns "
      "id,median_ms[,p10_ms,p90_ms,runs]; tools/ort_run.js bundle does it with ONNX Runtime), "
      "then: autotailor profile DIR --device {} --import RESULTS.csv",
      out, b.configs, b.total, i, n, b.pairs, cs.unique_edges, b.whole, dev.name, dev.name);
}

void import_device_results(const supernet::Supernet& tuned, const std::string& dir,
                           const std::string& device, const std::vector<std::string>& csvs,
                           int threads, const std::string& runtime) {
  supernet::Supernet s = latency_view(tuned);
  latency::Device dev = latency::find_device(device);
  if (dev.kind == "measured")
    fail("--import: '{}' is measured directly (autotailor profile DIR --device {})", dev.name,
         dev.name);
  latency::SpaceConfigs cs = latency::unique_configs(s);
  std::map<std::string, std::string> key_of;
  for (const auto& c : cs.configs) key_of[latency::config_id(c.key)] = c.key;
  std::map<std::string, const latency::EdgeConfig*> edge_of;
  for (const auto& e : cs.edges) edge_of[latency::config_id(e.key)] = &e;
  std::map<std::string, std::string> whole_of;  // bundle id -> calibration subnet name
  auto calib = latency::calibration_subnets(s.space());
  for (const auto& [name, cfg] : calib) whole_of[latency::whole_id(name)] = name;
  std::string path = latency::lut_path(dir, dev.name);
  latency::LatencyTable lut;
  if (std::filesystem::exists(path)) {
    lut = latency::LatencyTable::load(path);
    if (lut.method != "import") lut = latency::LatencyTable{};  // estimates: replaced
    // Estimated entries are refilled below for what the imports do not cover.
    for (auto it = lut.entries.begin(); it != lut.entries.end();)
      it = it->second.estimated ? lut.entries.erase(it) : std::next(it);
  }
  lut.device = dev.name;
  lut.method = "import";
  lut.threads = threads;
  lut.runtime = runtime.empty() ? "imported measurements" : runtime;
  lut.version = AUTOTAILOR_VERSION;
  lut.scale = 1;
  size_t imported = 0, pairs = 0;
  for (const std::string& csv : csvs) {
    auto rows = latency::read_results_csv(csv);
    double overhead = 0;
    auto o = rows.find(latency::kCallOverheadId);
    if (o != rows.end()) {
      overhead = o->second.median_ms;
      lut.overhead_ms = overhead;
    } else {
      spdlog::warn("{}: no {} row; steps keep the runtime's per-call cost", csv,
                   latency::kCallOverheadId);
    }
    for (const auto& [id, e] : rows) {
      if (id == latency::kCallOverheadId) continue;
      auto w = whole_of.find(id);
      if (w != whole_of.end()) {
        lut.calibration[w->second] = e.median_ms;  // a whole model pays one call: kept
        continue;
      }
      auto pe = edge_of.find(id);
      if (pe != edge_of.end()) {
        const latency::EdgeConfig& edge = *pe->second;
        lut.pairs[id] = {edge.producer, edge.consumer, edge.bytes,
                         std::max(0.0, e.median_ms - overhead)};
        ++pairs;
        continue;
      }
      auto k = key_of.find(id);
      if (k == key_of.end())
        fail("{}: id {} is not an operator configuration of {} (a bundle of another SuperNet?)",
             csv, id, dir);
      latency::LatencyEntry m = e;
      m.median_ms = std::max(0.0, e.median_ms - overhead);
      m.p10_ms = std::max(0.0, e.p10_ms - overhead);
      m.p90_ms = std::max(0.0, e.p90_ms - overhead);
      m.estimated = false;
      lut.entries[k->second] = m;
      ++imported;
    }
  }
  // The device's speed while the bundle was timed: its whole max subnet, as validate-latency
  // will time it again.
  if (auto m = lut.calibration.find("max"); m != lut.calibration.end()) {
    lut.reference_ms = m->second;
    lut.reference_samples = 1;
  }
  size_t measured = 0;
  for (const auto& c : cs.configs) measured += lut.entries.count(c.key);
  size_t estimated = fill_estimates(dev, cs, lut);
  lut.fit_fusion_rules();
  // Per-model correction from the whole calibration subnets, once all are measured: a whole
  // model runs its weights cold and pays its runtime's per-model costs, which single steps
  // timed alone do not show.
  lut.calibration_subnets = 0;
  lut.calibration_model.clear();
  lut.ms_per_input_mb = lut.ms_per_weight_mb = 0;
  lut.floor_ratio = 0;
  bool complete = !estimated && measured == cs.configs.size();
  for (const auto& [name, cfg] : calib) complete = complete && lut.calibration.count(name);
  if (complete) {
    double call = lut.overhead_ms;
    lut.overhead_ms = 0;
    std::string fitted = latency::fit_calibration(s, lut);
    if (fitted.empty()) {
      lut.overhead_ms = call;
      spdlog::warn("the whole calibration subnets gave no usable fit: not applied");
    } else {
      spdlog::info("{}", fitted);
    }
  }
  lut.date = now_utc();
  lut.save(path);
  spdlog::info(
      "wrote {}: {} measurements imported; {} of {} configurations measured on {}, per-model "
      "overhead {:.4f} ms{}",
      path, imported, measured, cs.configs.size(), dev.name, lut.overhead_ms,
      estimated ? fmt::format(", {} still estimated", estimated) : std::string());
  if (pairs || !lut.pairs.empty()) {
    spdlog::info("fusion-rule test: {} two-step models imported ({} in the LUT)", pairs,
                 lut.pairs.size());
    for (const latency::FusionRule& r : lut.rules)
      spdlog::info("  {} -> {}: {} pairs, median saving {:.4f} ms ({:.0f}% of a + b){}", r.producer,
                   r.consumer, r.pairs, r.median_saving_ms, 100 * r.median_share,
                   r.detected ? fmt::format(", detected: saving = {:.4f} ms + {:.4f} ms/MB",
                                            r.intercept_ms, r.ms_per_mb)
                              : std::string(", not detected"));
  }
  if (!estimated && measured < cs.configs.size())
    spdlog::warn("{} configurations are not measured yet (import the other shards)",
                 cs.configs.size() - measured);
}

supernet::Supernet latency_view(const supernet::Supernet& s) {
  if (train::batchnorm_nodes(s.graph()).empty()) return s;
  auto g = std::make_shared<ir::Graph>(s.graph());
  fold_batchnorm(*g);
  supernet::Supernet v(g, s.options());
  v.space() = s.space();  // the same groups by name, with the directory's choices
  return v;
}

void add_profile(CLI::App& app) {
  auto a = std::make_shared<LatencyArgs>();
  auto* cmd = app.add_subcommand(
      "profile", "Measure the latency LUT of every operator configuration in the space");
  cmd->add_option("dir", a->dir, "Directory made by `supernet` or `compile`")->required();
  cmd->add_option("--device", a->device, "Target device (see `devices`)")->required();
  cmd->add_option("--threads", a->threads, "Intra-op threads to measure with")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--bundle", a->bundle,
                  "Write the configurations as standalone ONNX models to time on the device");
  cmd->add_option("--shard", a->shard, "With --bundle: this part i/n of the configurations");
  cmd->add_option("--import", a->imports,
                  "Results CSV (id,median_ms[,p10_ms,p90_ms,runs]) timed on the device; repeat "
                  "for shards")
      ->check(CLI::ExistingFile);
  cmd->add_option("--runtime", a->runtime, "With --import: the runtime that measured, recorded");
  cmd->add_option("--method", a->method,
                  "context: time each step inside whole covering subnets (default); isolated: "
                  "time each step alone");
  cmd->callback([a] {
    if (!a->bundle.empty() && !a->imports.empty())
      fail(
          "--bundle and --import are separate steps: write the bundle, time it on the device, "
          "then import");
    supernet::Supernet s = supernet::Supernet::load(a->dir);
    DirLock lock(a->dir);
    if (!a->bundle.empty()) return write_device_bundle(s, a->device, a->bundle, a->shard);
    if (a->shard != "0/1") usage_fail("--shard {}: only with --bundle", a->shard);
    if (!a->imports.empty())
      return import_device_results(s, a->dir, a->device, a->imports, a->threads, a->runtime);
    profile_device(s, a->dir, a->device, a->threads, a->method);
  });
}

void profile_device(const supernet::Supernet& tuned, const std::string& dir,
                    const std::string& device, int threads, const std::string& method) {
  if (method != "context" && method != "isolated")
    usage_fail("--method {}: use context or isolated", method);
  supernet::Supernet s = latency_view(tuned);
  latency::Device dev = latency::find_device(device);
  std::string path = latency::lut_path(dir, dev.name);
  if (dev.kind == "ort") {
    // The on-device flow on this machine: bundle, time every model with ONNX Runtime, import.
    latency::SpaceConfigs cs = latency::unique_configs(s);
    if (std::filesystem::exists(path)) {
      latency::LatencyTable old = latency::LatencyTable::load(path);
      size_t have = 0;
      for (const auto& c : cs.configs) have += old.entries.count(c.key);
      size_t have_pairs = 0;
      for (const auto& e : cs.edges) have_pairs += old.pairs.count(latency::config_id(e.key));
      auto calib = latency::calibration_subnets(s.space());
      size_t have_whole = 0;
      for (const auto& [name, cfg] : calib) have_whole += old.calibration.count(name);
      if (have == cs.configs.size() && have_pairs == cs.edges.size() &&
          have_whole == calib.size() && old.threads == threads) {
        spdlog::info(
            "{} already holds all {} configurations and {} fusion-test pairs: nothing to measure",
            path, have, have_pairs);
        return;
      }
    }
    auto t0 = std::chrono::steady_clock::now();
    std::string bdir = (std::filesystem::path(dir) / ("bundle_" + dev.name)).string();
    std::string csv = (std::filesystem::path(dir) / ("results_" + dev.name + ".csv")).string();
    size_t n_whole = latency::write_bundle(cs, dev.name, bdir, 0, 1, &s).whole;
    spdlog::info(
        "timing {} models with ONNX Runtime ({} thread(s)): {} configurations, {} two-step "
        "models for the fusion-rule test, {} whole calibration subnets, the call overhead; "
        "progress every 10 s",
        cs.configs.size() + cs.edges.size() + n_whole + 1, threads, cs.configs.size(),
        cs.edges.size(), n_whole);
    // --reference: every model is timed against the bundle's whole max subnet timed within a
    // second after it, so that the machine drifting during the bundle cancels (ort_run.js).
    run_ort({"bundle", bdir, "--out", csv, "--threads", std::to_string(threads), "--reference"});
    std::string version = run_ort({"version"});
    while (!version.empty() && std::isspace(static_cast<unsigned char>(version.back())))
      version.pop_back();
    import_device_results(tuned, dir, dev.name, {csv}, threads,
                          fmt::format("ONNX Runtime {} (onnxruntime-node, CPU)", version));
    latency::LatencyTable lut = latency::LatencyTable::load(path);
    lut.profiling_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    lut.relative = true;
    lut.save(path);
    std::filesystem::remove_all(bdir);
    return;
  }
  if (dev.kind != "measured") {
    // An analytic estimate from the descriptor: nothing to measure here.
    latency::SpaceConfigs cs = latency::unique_configs(s);
    latency::LatencyTable lut;
    lut.device = dev.name;
    lut.threads = dev.cores;
    lut.runtime = "analytic estimate (autotailor device model)";
    lut.method = "estimate";
    lut.version = AUTOTAILOR_VERSION;
    for (const auto& c : cs.configs) lut.entries[c.key] = latency::estimate(dev, *c.graph);
    lut.date = now_utc();
    lut.save(path);
    spdlog::info(
        "wrote {}: {} estimated entries for {} ({}; estimated until measurements "
        "replace it)",
        path, lut.entries.size(), dev.name, dev.cpu);
    return;
  }
  at::set_num_threads(threads);
  latency::LatencyTable lut;
  if (std::filesystem::exists(path)) {
    lut = latency::LatencyTable::load(path);
    if (lut.threads != threads)
      fail("{} was measured with {} thread(s); remove it or pass --threads {}", path, lut.threads,
           lut.threads);
    if (lut.method != method)
      fail("{} was measured with --method {}; remove it or pass --method {}", path, lut.method,
           lut.method);
  }
  lut.method = method;
  lut.device = dev.name;
  lut.threads = threads;
  lut.runtime = "autotailor executor (LibTorch 1.13, oneDNN)";
  lut.version = AUTOTAILOR_VERSION;
  auto t0 = std::chrono::steady_clock::now();
  latency::SpaceConfigs cs = latency::unique_configs(s);
  double enum_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info(
      "{} unique operator configurations in a space of 10^{:.2f} subnets (found "
      "through {} covering subnets in {:.1f} s)",
      cs.configs.size(), cs.log10_subnets, cs.subnets_derived, enum_s);
  SpeedReference reference(s);
  const double seconds_before = lut.profiling_seconds;
  auto since_save = std::chrono::steady_clock::now();
  std::function<void()> sync = [] {};  // brings lut's entries up to date before a save
  auto measured = [&](std::chrono::steady_clock::time_point start) {
    auto end = std::chrono::steady_clock::now();
    lut.profiling_seconds += std::chrono::duration<double>(end - start).count();
    // Saved as it goes: an interrupted profile resumes where it stopped.
    if (end - since_save > std::chrono::seconds(5)) {
      sync();
      lut.date = now_utc();
      lut.save(path);
      since_save = end;
    }
  };
  if (method == "isolated") {
    std::vector<const latency::OpConfig*> todo;
    for (const auto& c : cs.configs)
      if (!lut.entries.count(c.key)) todo.push_back(&c);
    spdlog::info("{} already in {}, {} to measure alone", cs.configs.size() - todo.size(), path,
                 todo.size());
    lut.relative = false;
    Progress progress("profiling", todo.size());
    for (size_t i = 0; i < todo.size(); ++i) {
      auto start = std::chrono::steady_clock::now();
      if (SpeedReference::due(i, todo.size())) reference.sample();
      exec::Executor ex(todo[i]->graph);
      exec::Timing t =
          exec::time_runs(ex, exec::random_inputs(*todo[i]->graph, 1, 0, true), 3, 10, 25.0, 200);
      lut.entries[todo[i]->key] = {t.median_ms, t.p10_ms, t.p90_ms, t.runs, false};
      measured(start);
      progress.step(i + 1);
    }
  } else {
    // In context: each covering subnet runs whole with every step timed, and a block of the
    // speed reference runs right after; a configuration's entry is the median over the
    // covering subnets it occurs in of its per-subnet median over that reference block's
    // median. Entries are stored in ms at the reference's median over the profile (or, when
    // resuming, at the table's recorded one), so that drift of the machine's speed during the
    // profile cancels instead of landing on whichever steps were timed while it lasted.
    std::vector<size_t> todo;
    std::set<std::string> missing;
    for (size_t i = 0; i < cs.covering.size(); ++i)
      for (const auto& k : cs.covering_keys[i])
        if (!lut.entries.count(k)) {
          todo.push_back(i);
          missing.insert(cs.covering_keys[i].begin(), cs.covering_keys[i].end());
          break;
        }
    size_t have = 0;
    for (const auto& c : cs.configs) have += lut.entries.count(c.key);
    spdlog::info("{} of {} configurations already in {}; {} covering subnets to time in context",
                 have, cs.configs.size(), path, todo.size());
    // Resuming: the entries already there are in ms at the recorded reference; new ones join
    // them at that unit.
    const bool fixed_unit = have > 0 && lut.reference_ms > 0;
    const int samples_before = fixed_unit ? lut.reference_samples : 0;
    std::map<std::string, std::vector<double>> per_context;  // in reference units
    std::map<std::string, int> runs;
    // Each covering subnet measured now, and its untimed whole run in reference units: what
    // the per-model calibration is fitted on.
    std::vector<std::pair<size_t, double>> wholes;
    sync = [&] {
      if (per_context.empty()) return;
      double unit = fixed_unit ? lut.reference_ms : reference.median();
      for (const auto& [key, ratios] : per_context) {
        exec::Timing across = exec::summarize(ratios);
        lut.entries[key] = {across.median_ms * unit, across.p10_ms * unit, across.p90_ms * unit,
                            runs[key], false};
      }
      // The per-model calibration, measured: latency = overhead_ms + scale x (sum of the
      // entries), fitted (least relative squares) on every covering subnet timed now, run
      // whole without step timers right after its steps, against the sum of its entries.
      std::vector<double> xs, ys;
      for (const auto& [i, ratio] : wholes) {
        double sum = 0;
        for (const auto& k : cs.covering_keys[i]) sum += lut.entries.at(k).median_ms;
        xs.push_back(sum);
        ys.push_back(ratio * unit);
      }
      if (xs.size() >= 3) {  // else (a short resume) the table keeps its calibration
        set_calibration(lut, latency::fit_overhead_scale(xs, ys));
        lut.calibration_subnets = static_cast<int>(xs.size());
      }
      lut.reference_ms = unit;
      lut.reference_samples = samples_before + reference.samples();
      lut.relative = true;
    };
    Progress progress("profiling", todo.size());
    for (size_t i = 0; i < todo.size(); ++i) {
      auto start = std::chrono::steady_clock::now();
      std::shared_ptr<const ir::Graph> g = s.derive(cs.covering[todo[i]]);
      exec::Executor ex(g);
      const auto& keys = cs.covering_keys[todo[i]];
      if (ex.step_count() != keys.size()) fail("internal: step plan changed between derivations");
      std::vector<at::Tensor> in = exec::random_inputs(*g, 1);
      // A short block: a warm-up run, 3 timed with step timers, 3 whole without; longer
      // blocks cost 2-3x the time and were no more accurate (docs/latency.md, "Short
      // blocks"). A step's entry is then the median over the covering subnets it occurs in.
      auto steps = exec::time_steps(ex, in, 1, 3, 0.0, 3);
      double untimed = exec::time_runs(ex, in, 0, 3, 0.0, 3).median_ms;
      const double unit = reference.block();
      wholes.emplace_back(todo[i], untimed / unit);
      for (size_t k = 0; k < keys.size(); ++k) {
        if (!missing.count(keys[k])) continue;
        exec::Timing t = exec::summarize(steps[k]);
        per_context[keys[k]].push_back(t.median_ms / unit);
        runs[keys[k]] += t.runs;
      }
      measured(start);
      progress.step(i + 1);
    }
    sync();
  }
  if (method == "isolated") {
    // Per-model calibration: the max, min and a few random subnets measured whole, against the
    // sum of their steps (seeds 1000+ stay clear of validate-latency's 1..N).
    lut.overhead_ms = 0;
    lut.scale = 1;
    lut.floor_ratio = 0;
    std::vector<double> xs, ys;
    for (const auto& [name, c] : latency::calibration_subnets(s.space())) {
      auto g = s.derive(c);
      exec::Executor whole(g);
      ys.push_back(exec::time_runs(whole, exec::random_inputs(*g, 1), 3, 10, 200.0, 100).median_ms);
      xs.push_back(latency::predict(s, lut, c).latency_ms);
    }
    set_calibration(lut, latency::fit_overhead_scale(xs, ys));
    lut.calibration_subnets = static_cast<int>(xs.size());
  }
  if (method == "isolated" && lut.profiling_seconds > seconds_before) {
    // Something was measured now: the speed it was measured at.
    auto start = std::chrono::steady_clock::now();
    reference.sample();
    reference.store(lut);
    lut.profiling_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  double sum = latency::predict(s, lut, supernet::max_subnet(s.space())).latency_ms;
  lut.date = now_utc();
  lut.save(path);
  spdlog::info(
      "wrote {}: {} entries, {:.1f} s of measurement in all; from {} whole subnets: "
      "latency = {:.3f} ms + {:.3f} x sum of steps (max subnet predicted {:.3f} ms)",
      path, lut.entries.size(), lut.profiling_seconds, lut.calibration_subnets, lut.overhead_ms,
      lut.scale, sum);
}

void add_predict(CLI::App& app) {
  auto a = std::make_shared<LatencyArgs>();
  auto* cmd = app.add_subcommand("predict", "Predict a subnet's latency from the LUT");
  cmd->add_option("dir", a->dir, "Directory made by `supernet` or `compile`")->required();
  cmd->add_option("--device", a->device, "Target device")->required();
  cmd->add_option("--subnet", a->subnet, "max, min, mid, random:SEED or a subnet JSON file");
  cmd->add_flag("--json", a->json, "Print JSON (latency_ms, ...) to stdout");
  cmd->callback([a] {
    supernet::Supernet s = latency_view(supernet::Supernet::load(a->dir));
    latency::LatencyTable lut = latency::load_lut(a->dir, a->device);
    supernet::SubnetConfig cfg = supernet::parse_subnet_spec(a->subnet, s.space());
    latency::Prediction p = latency::predict(s, lut, cfg);
    bool estimated = std::any_of(lut.entries.begin(), lut.entries.end(),
                                 [](const auto& e) { return e.second.estimated; });
    // Accuracy once `sensitivity` (or `compile`) has measured the predictor's table.
    nlohmann::json accuracy = nullptr;
    std::string metric;
    if (std::filesystem::exists(sensitivity_path(a->dir))) {
      search::SensitivityTable t = search::SensitivityTable::load(sensitivity_path(a->dir));
      std::vector<supernet::Position> pos = supernet::positions(s.space());
      accuracy = search::AccuracyModel(t, pos, &s.space()).predict(supernet::encode(pos, cfg));
      metric = t.metric;
    }
    if (a->json) {
      nlohmann::json steps = nlohmann::json::array();
      for (const auto& [key, ms] : p.steps) steps.push_back({{"config", key}, {"ms", ms}});
      nlohmann::json j = {{"latency_ms", p.latency_ms},
                          {"accuracy", accuracy},
                          {"device", lut.device},
                          {"threads", lut.threads},
                          {"estimated", estimated},
                          {"overhead_ms", lut.overhead_ms},
                          {"subnet", nlohmann::json::parse(supernet::subnet_to_json(cfg))},
                          {"steps", steps}};
      if (!metric.empty()) j["accuracy_metric"] = metric;
      std::cout << j.dump(2) << "\n";
    } else {
      std::string acc = accuracy.is_null()
                            ? std::string(", accuracy unknown (run `autotailor sensitivity`)")
                            : fmt::format(", accuracy {:.2f}%{}", 100 * accuracy.get<double>(),
                                          metric == "top1" ? "" : " (agreement proxy)");
      std::cout << fmt::format("{}: predicted {:.3f} ms on {} ({} thread(s)){}{}, {} steps\n",
                               a->subnet, p.latency_ms, lut.device, lut.threads,
                               estimated ? " [estimated]" : "", acc, p.steps.size());
    }
  });
}

void add_validate_latency(CLI::App& app) {
  auto a = std::make_shared<LatencyArgs>();
  auto* cmd = app.add_subcommand("validate-latency",
                                 "Compare predicted with measured latency on random subnets");
  cmd->add_option("dir", a->dir, "Directory made by `supernet` or `compile`")->required();
  cmd->add_option("--device", a->device, "Target device")->required();
  cmd->add_option("--samples", a->samples, "Random subnets to export and measure")
      ->check(CLI::Range(1, 100000));
  cmd->add_flag(
      "--once", a->once,
      "Measure each subnet once, without the repeatability check (to collect whole-subnet "
      "timings, e.g. for a learned predictor)");
  cmd->add_flag("--json", a->json, "Print JSON to stdout");
  cmd->callback([a] {
    latency::Device dev = latency::find_device(a->device);
    if (dev.kind == "estimated")
      fail(
          "--device {}: whole models can only be measured here for host and host-ort (for {}, "
          "time exported variants on the device)",
          dev.name, dev.name);
    supernet::Supernet s = latency_view(supernet::Supernet::load(a->dir));
    latency::LatencyTable lut = latency::load_lut(a->dir, dev.name);
    at::set_num_threads(lut.threads);
    // Subnets are measured in batches: each batch is exported, then timed in interleaved
    // rounds (every subnet in turn, a few runs each), so that the machine's speed drifting
    // during the measurement spreads over all of them alike instead of landing on a few.
    // A subnet's time is the median of its round medians; its re-measurement compares the
    // median of its even rounds with that of its odd ones: how well a measurement repeats is
    // the floor under any predictor's error on this machine.
    // With a speed reference in the LUT, the max subnet is timed next to every subnet: on the
    // host a warm block of it right after each subnet's runs in every round (as `profile`
    // times it after every covering subnet), with ONNX Runtime once in every round of the
    // batch. A subnet's time in reference units is the median over rounds of its time over
    // the reference's; times that by the reference's time at profiling and it is what the
    // subnet would have taken at the LUT's speed. Both comparisons are printed; the plain one
    // is what the target is about.
    const int batch = 20, rounds = a->once ? 3 : 6;
    std::string stem = (std::filesystem::temp_directory_path() /
                        ("autotailor-validate." + std::to_string(::getpid())))
                           .string();
    const bool referenced = lut.reference_ms > 0;
    const std::string ref_file = stem + ".reference.onnx";
    if (referenced) export_subnet(s, supernet::max_subnet(s.space()), ref_file);
    nlohmann::json rows = nlohmann::json::array();
    int repeat10 = 0;
    Score plain, adjusted;
    std::vector<double> ref_all;
    Progress progress("measuring", a->samples);
    auto median = [](const std::vector<double>& v) { return exec::summarize(v).median_ms; };
    for (int first = 1; first <= a->samples; first += batch) {
      int last = std::min(a->samples, first + batch - 1);
      std::vector<supernet::SubnetConfig> cfgs;
      std::vector<std::string> files;
      // A subnet's own size, for learned predictors to be compared against (bench/latency.py):
      // counted on the derived graph, not measured.
      std::vector<int64_t> macs;
      for (int i = first; i <= last; ++i) {
        cfgs.push_back(supernet::random_subnet(s.space(), static_cast<uint64_t>(i)));
        files.push_back(fmt::format("{}.{}.onnx", stem, i));
        std::shared_ptr<const ir::Graph> derived = s.derive(cfgs.back());
        macs.push_back(ir::graph_stats(*derived).macs);
        // Measured as users get it: the export.
        export_graph(*derived, s.graph().name, files.back());
      }
      if (referenced) files.push_back(ref_file);
      std::vector<std::vector<double>> round_ms;  // per subnet
      std::vector<std::vector<double>> ref_ms;    // per subnet: the reference next to it
      if (dev.kind == "ort") {
        round_ms = ort_round_medians(files, lut.threads, rounds, 10, 2);
        if (referenced) {
          ref_all.insert(ref_all.end(), round_ms.back().begin(), round_ms.back().end());
          ref_ms.assign(cfgs.size(), round_ms.back());
          round_ms.pop_back();
        }
      } else {
        std::vector<std::unique_ptr<exec::Executor>> exs;
        std::vector<std::vector<at::Tensor>> ins;
        for (const std::string& f : files) {
          std::shared_ptr<const ir::Graph> g = import_onnx(f);
          exs.push_back(std::make_unique<exec::Executor>(g));
          ins.push_back(exec::random_inputs(*g, 1));
        }
        round_ms.resize(cfgs.size());
        ref_ms.resize(referenced ? cfgs.size() : 0);
        for (int r = 0; r < rounds; ++r)
          for (size_t k = 0; k < cfgs.size(); ++k) {
            round_ms[k].push_back(exec::time_runs(*exs[k], ins[k], 1, 5, 30.0, 50).median_ms);
            if (referenced) {
              ref_ms[k].push_back(exec::time_runs(*exs.back(), ins.back(), 1,
                                                  SpeedReference::kValidationBlockRuns, 0.0,
                                                  SpeedReference::kValidationBlockRuns)
                                      .median_ms);
              ref_all.push_back(ref_ms[k].back());
            }
          }
      }
      if (referenced) files.pop_back();
      for (const std::string& f : files) std::filesystem::remove(f);
      for (size_t k = 0; k < cfgs.size(); ++k) {
        const std::vector<double>& rm = round_ms[k];
        double predicted = latency::predict(s, lut, cfgs[k]).latency_ms;
        double measured = median(rm);
        std::vector<double> even, odd;
        for (size_t r = 0; r < rm.size(); ++r) (r % 2 ? odd : even).push_back(rm[r]);
        double m_even = median(even), m_odd = odd.empty() ? m_even : median(odd);
        repeat10 += std::fabs(m_odd - m_even) / m_even <= 0.10;
        double err = (predicted - measured) / measured;
        plain.add(predicted, measured);
        rows.push_back({{"subnet", "random:" + std::to_string(first + static_cast<int>(k))},
                        {"config", nlohmann::json::parse(supernet::subnet_to_json(cfgs[k]))},
                        {"predicted_ms", predicted},
                        {"measured_ms", measured},
                        {"round_medians_ms", rm},
                        {"remeasured_ms", a->once ? nlohmann::json() : nlohmann::json(m_odd)},
                        {"error", err},
                        {"macs", macs[k]}});
        if (referenced) {
          const std::vector<double>& rr = ref_ms[k];
          std::vector<double> ratios;
          for (size_t r = 0; r < rm.size(); ++r) ratios.push_back(rm[r] / rr[r]);
          double at_lut_speed = median(ratios) * lut.reference_ms;
          adjusted.add(predicted, at_lut_speed);
          rows.back()["reference_round_medians_ms"] = rr;
          rows.back()["drift"] = median(rr) / lut.reference_ms;
          rows.back()["adjusted_measured_ms"] = at_lut_speed;
          rows.back()["adjusted_error"] = (predicted - at_lut_speed) / at_lut_speed;
        }
      }
      progress.step(static_cast<size_t>(last));
    }
    const double n = a->samples;
    nlohmann::json j = {{"device", a->device}, {"threads", lut.threads}, {"samples", a->samples}};
    j.update(plain.json());
    j["repeat_within_10pct"] = a->once ? nlohmann::json() : nlohmann::json(repeat10 / n);
    j["subnets"] = rows;
    double now = 0, drift = 0;  // the reference over the whole run
    if (referenced) {
      std::filesystem::remove(ref_file);
      now = median(ref_all);
      drift = now / lut.reference_ms;
      j["speed_reference"] = {{"subnet", "max"},
                              {"profiled_ms", lut.reference_ms},
                              {"measured_ms", now},
                              {"drift", drift},
                              {"paired", dev.kind == "ort" ? "round" : "subnet"}};
      j["adjusted"] = adjusted.json();
    }
    if (a->json) {
      std::cout << j.dump(2) << "\n";
      return;
    }
    for (const auto& r : rows)
      std::cout << fmt::format("{:<12} predicted {:9.3f} ms  measured {:9.3f} ms  {:+6.1f}%\n",
                               r["subnet"].get<std::string>(), r["predicted_ms"].get<double>(),
                               r["measured_ms"].get<double>(), 100 * r["error"].get<double>());
    std::cout << fmt::format("{} samples on {} ({} thread(s)): {}", a->samples, a->device,
                             lut.threads, plain.text());
    if (!a->once)
      std::cout << fmt::format(
          "; a second measurement of the same subnet was within 10% of the first for {:.0f}%",
          100 * repeat10 / n);
    std::cout << "\n";
    if (referenced)
      std::cout << fmt::format(
          "speed reference (the max subnet): {:.3f} ms now, {:.3f} ms when the LUT was measured "
          "({:+.0f}%); measured times in its units, at the LUT's speed: {}\n",
          now, lut.reference_ms, 100 * (drift - 1), adjusted.text());
  });
}

}  // namespace autotailor::cli
