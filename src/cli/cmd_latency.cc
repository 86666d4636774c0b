#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "autotailor/common/error.h"
#include "autotailor/exec/timing.h"
#include "autotailor/export/export.h"
#include "autotailor/import/onnx_import.h"
#include "autotailor/latency/device.h"
#include "autotailor/latency/latency.h"
#include "autotailor/train/batchnorm.h"
#include "commands.h"
#include "progress.h"
#include "train_flags.h"

namespace autotailor::cli {

namespace {

void require_host(const std::string& device) {
  if (device != "host")
    fail("--device: '{}' is not a device that can be measured here (see `autotailor devices`)",
         device);
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
  bool json = false;
};

}  // namespace

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
  cmd->callback(
      [a] { profile_device(supernet::Supernet::load(a->dir), a->dir, a->device, a->threads); });
}

void profile_device(const supernet::Supernet& tuned, const std::string& dir,
                    const std::string& device, int threads) {
  supernet::Supernet s = latency_view(tuned);
  latency::Device dev = latency::find_device(device);
  std::string path = latency::lut_path(dir, dev.name);
  if (dev.kind != "measured") {
    // An analytic estimate from the descriptor: nothing to measure here.
    latency::SpaceConfigs cs = latency::unique_configs(s);
    latency::LatencyTable lut;
    lut.device = dev.name;
    lut.threads = dev.cores;
    lut.runtime = "analytic estimate (autotailor device model)";
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
  }
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
  std::vector<const latency::OpConfig*> todo;
  for (const auto& c : cs.configs)
    if (!lut.entries.count(c.key)) todo.push_back(&c);
  spdlog::info("{} already in {}, {} to measure", cs.configs.size() - todo.size(), path,
               todo.size());
  Progress progress("profiling", todo.size());
  auto since_save = std::chrono::steady_clock::now();
  for (size_t i = 0; i < todo.size(); ++i) {
    auto start = std::chrono::steady_clock::now();
    exec::Executor ex(todo[i]->graph);
    exec::Timing t =
        exec::time_runs(ex, exec::random_inputs(*todo[i]->graph, 1, 0, true), 3, 10, 25.0, 200);
    lut.entries[todo[i]->key] = {t.median_ms, t.p10_ms, t.p90_ms, t.runs, false};
    auto end = std::chrono::steady_clock::now();
    lut.profiling_seconds += std::chrono::duration<double>(end - start).count();
    // Saved as it goes: an interrupted profile resumes where it stopped.
    if (end - since_save > std::chrono::seconds(5)) {
      lut.date = now_utc();
      lut.save(path);
      since_save = end;
    }
    progress.step(i + 1);
  }
  // Per-model calibration: the max, min and a few random subnets measured whole, against the
  // sum of their steps (seeds 1000+ stay clear of validate-latency's 1..N).
  std::vector<supernet::SubnetConfig> calib = {supernet::max_subnet(s.space()),
                                               supernet::min_subnet(s.space())};
  for (uint64_t seed = 1001; seed <= 1006; ++seed)
    calib.push_back(supernet::random_subnet(s.space(), seed));
  lut.overhead_ms = 0;
  lut.scale = 1;
  // Weighted by 1/y^2: the fit minimises relative error, which is what the target counts.
  double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const auto& c : calib) {
    auto g = s.derive(c);
    exec::Executor whole(g);
    double y = exec::time_runs(whole, exec::random_inputs(*g, 1), 3, 10, 200.0, 100).median_ms;
    double x = latency::predict(s, lut, c).latency_ms;
    double w = 1.0 / (y * y);
    sw += w, sx += w * x, sy += w * y, sxx += w * x * x, sxy += w * x * y;
  }
  double denom = sw * sxx - sx * sx;
  lut.scale = denom > 0 ? (sw * sxy - sx * sy) / denom : 1.0;
  lut.overhead_ms = (sy - lut.scale * sx) / sw;
  lut.calibration_subnets = static_cast<int>(calib.size());
  double sum = latency::predict(s, lut, calib[0]).latency_ms;
  lut.date = now_utc();
  lut.save(path);
  spdlog::info(
      "wrote {}: {} entries, {:.1f} s of measurement in all; calibrated on {} whole "
      "subnets: latency = {:.3f} ms + {:.3f} x sum of steps (max subnet predicted "
      "{:.3f} ms)",
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
      accuracy = search::AccuracyModel(t, pos).predict(supernet::encode(pos, cfg));
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
  cmd->add_flag("--json", a->json, "Print JSON to stdout");
  cmd->callback([a] {
    require_host(a->device);
    supernet::Supernet s = latency_view(supernet::Supernet::load(a->dir));
    latency::LatencyTable lut = latency::load_lut(a->dir, a->device);
    at::set_num_threads(lut.threads);
    std::string tmp = (std::filesystem::temp_directory_path() /
                       ("autotailor-validate." + std::to_string(::getpid()) + ".onnx"))
                          .string();
    nlohmann::json rows = nlohmann::json::array();
    double se = 0, ape = 0;
    int within5 = 0, within10 = 0;
    Progress progress("measuring", a->samples);
    for (int i = 1; i <= a->samples; ++i) {
      supernet::SubnetConfig cfg = supernet::random_subnet(s.space(), static_cast<uint64_t>(i));
      double predicted = latency::predict(s, lut, cfg).latency_ms;
      export_subnet(s, cfg, tmp);  // measured as users get it: the exported file
      std::shared_ptr<const ir::Graph> g = import_onnx(tmp);
      exec::Executor ex(g);
      double measured =
          exec::time_runs(ex, exec::random_inputs(*g, 1), 3, 10, 200.0, 100).median_ms;
      double err = (predicted - measured) / measured;
      se += (predicted - measured) * (predicted - measured);
      ape += std::fabs(err);
      within5 += std::fabs(err) <= 0.05;
      within10 += std::fabs(err) <= 0.10;
      rows.push_back({{"subnet", "random:" + std::to_string(i)},
                      {"predicted_ms", predicted},
                      {"measured_ms", measured},
                      {"error", err}});
      progress.step(static_cast<size_t>(i));
    }
    std::filesystem::remove(tmp);
    const double n = a->samples;
    nlohmann::json j = {
        {"device", a->device},          {"threads", lut.threads}, {"samples", a->samples},
        {"rmse_ms", std::sqrt(se / n)}, {"mape", ape / n},        {"within_5pct", within5 / n},
        {"within_10pct", within10 / n}, {"subnets", rows}};
    if (a->json) {
      std::cout << j.dump(2) << "\n";
      return;
    }
    for (const auto& r : rows)
      std::cout << fmt::format("{:<12} predicted {:9.3f} ms  measured {:9.3f} ms  {:+6.1f}%\n",
                               r["subnet"].get<std::string>(), r["predicted_ms"].get<double>(),
                               r["measured_ms"].get<double>(), 100 * r["error"].get<double>());
    std::cout << fmt::format(
        "{} samples on {} ({} thread(s)): RMSE {:.3f} ms, mean abs error {:.1f}%, within 5%: "
        "{:.0f}%, within 10%: {:.0f}%\n",
        a->samples, a->device, lut.threads, std::sqrt(se / n), 100 * ape / n, 100 * within5 / n,
        100 * within10 / n);
  });
}

}  // namespace autotailor::cli
