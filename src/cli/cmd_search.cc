// `sensitivity`, `search` and `validate-accuracy`: the accuracy predictor and the evolutionary
// search over a SuperNet directory.
#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>

#include "autotailor/common/error.h"
#include "autotailor/common/files.h"
#include "autotailor/common/progress.h"
#include "autotailor/common/statistics.h"
#include "autotailor/exec/executor.h"
#include "autotailor/latency/latency.h"
#include "autotailor/search/search.h"
#include "budget_flags.h"
#include "commands.h"
#include "train_flags.h"

namespace autotailor::cli {

namespace fs = std::filesystem;

std::string sensitivity_path(const std::string& dir) {
  return (fs::path(dir) / "sensitivity.json").string();
}

AccuracyProbe::AccuracyProbe(const supernet::Supernet& s, const std::string& dir, DataFlags flags,
                             size_t probe_images)
    : s_(s) {
  if (flags.spec.empty()) {
    // No data: agreement with the max subnet's top-1 class on seeded synthetic images, a proxy.
    // At most 256 of them: they are held in memory (3000 at 224x224 would be 1.8 GB) and a
    // proxy gains little from more.
    train::ModelShape m = train::model_shape(s.graph());
    at::manual_seed(0);
    size_t n = std::clamp<size_t>(probe_images, 64, 256);
    if (n != probe_images)
      spdlog::info("no data: the agreement proxy uses {} synthetic images (of {} asked)", n,
                   probe_images);
    synthetic_ = at::rand({static_cast<int64_t>(n), m.channels, m.height, m.width});
    reference_ = top1_synthetic(s.derive(supernet::max_subnet(s.space())));
    return;
  }
  recorded_data_options(dir, flags);
  workers_ = flags.workers;
  data_ = flags.open(train::model_shape(s.graph()));
  // BatchNorm recalibration reads the first calibration_images held-out images; probes use the
  // rest when there are enough, else all of them.
  const auto& cal = data_->split.calibration;
  size_t skip = cal.size() >= data_->calibration_images + 500 ? data_->calibration_images : 0;
  probe_.assign(cal.begin() + static_cast<std::ptrdiff_t>(skip), cal.end());
  if (probe_images > 0 && probe_.size() > probe_images) probe_.resize(probe_images);
}

at::Tensor AccuracyProbe::top1_synthetic(std::shared_ptr<const ir::Graph> g) const {
  exec::Executor ex(g);
  const ir::Shape& in = g->tensor(g->inputs[0]).shape;
  at::Tensor x = synthetic_;
  if (x.size(2) != in[2] || x.size(3) != in[3])
    x = at::upsample_bilinear2d(x, {in[2], in[3]}, false);
  std::vector<at::Tensor> parts;
  for (int64_t i = 0; i < x.size(0); i += 64)
    parts.push_back(ex.run({x.narrow(0, i, std::min<int64_t>(64, x.size(0) - i))})[0].argmax(1));
  return at::cat(parts);
}

search::ProbeResult AccuracyProbe::measure(const supernet::SubnetConfig& c) const {
  if (!data_) {
    at::Tensor agree = top1_synthetic(s_.derive(c)).eq(reference_).to(at::kByte).contiguous();
    const uint8_t* p = agree.data_ptr<uint8_t>();
    search::ProbeResult r{0, std::vector<uint8_t>(p, p + agree.numel())};
    r.accuracy = agree.to(at::kDouble).mean().item<double>();
    return r;
  }
  auto g = calibrated_subnet(s_, c, *data_, workers_);
  train::Accuracy a = train::evaluate_on(g, data_->source.train, probe_, data_->pre, 256, workers_);
  return {a.top1, std::move(a.correct)};
}

size_t AccuracyProbe::images() const {
  return data_ ? probe_.size() : static_cast<size_t>(synthetic_.size(0));
}

search::SensitivityTable measure_sensitivity(const supernet::Supernet& s, const std::string& dir,
                                             const DataFlags& flags, size_t probe_images,
                                             const std::string& reference) {
  AccuracyProbe probe(s, dir, flags, probe_images);
  size_t total = 1 + 3 + search::kAnchorRandom;
  for (const auto& p : supernet::positions(s.space())) total += p.choices.size() - 1;
  Progress progress("probing", total);
  search::SensitivityTable t = search::measure_sensitivity(
      s.space(), [&](const supernet::SubnetConfig& c) { return probe.measure(c); },
      [&](size_t done, size_t) { progress.step(done); }, reference);
  t.metric = probe.has_data() ? "top1" : "agreement";
  t.probe_images = probe.images();
  t.save(sensitivity_path(dir));
  spdlog::info("wrote {}: {} probes on {} {} images in {:.1f} s ({} subnet {:.2f}%){}",
               sensitivity_path(dir), t.entries.size() + 1, t.probe_images,
               probe.has_data() ? "held-out" : "synthetic", t.seconds, reference,
               100 * t.base_accuracy,
               probe.has_data() ? "" : "; no data: agreement with the max subnet, a proxy");
  return t;
}

namespace {

nlohmann::json limits_json(const Budgets& b) {
  nlohmann::json j = nlohmann::json::object();
  if (std::isfinite(b.max_macs)) j["max_macs"] = b.max_macs;
  if (std::isfinite(b.max_params)) j["max_parameters"] = b.max_params;
  return j;
}

}  // namespace

nlohmann::json run_search(const supernet::Supernet& tuned, const std::string& dir,
                          const std::string& device, const Budgets& budgets,
                          const search::EvolutionOptions& eo, const AccuracyProbe* probe) {
  supernet::Supernet s = latency_view(tuned);
  latency::LatencyTable lut = latency::load_lut(dir, device);
  std::string sp = sensitivity_path(dir);
  if (!fs::exists(sp))
    fail("{} is missing: run `autotailor sensitivity {} [--data SPEC]` first", sp, dir);
  search::SensitivityTable t = search::SensitivityTable::load(sp);
  std::vector<supernet::Position> pos = supernet::positions(s.space());
  latency::LatencyModel lm(s, lut), macs(s, latency::Count::Macs),
      params(s, latency::Count::Parameters);
  search::AccuracyModel am(t, pos, &s.space());
  bool estimated = std::any_of(lut.entries.begin(), lut.entries.end(),
                               [](const auto& e) { return e.second.estimated; });
  auto model_of = [&](const std::string& unit) -> const latency::LatencyModel& {
    return unit == "macs" ? macs : unit == "parameters" ? params : lm;
  };
  const latency::LatencyModel& cost = model_of(budgets.unit);
  std::vector<search::Constraint> limits;
  if (std::isfinite(budgets.max_macs))
    limits.push_back({"--max-macs", [&](const supernet::SubnetCode& c) { return macs.predict(c); },
                      budgets.max_macs});
  if (std::isfinite(budgets.max_params))
    limits.push_back({"--max-params",
                      [&](const supernet::SubnetCode& c) { return params.predict(c); },
                      budgets.max_params});
  search::SearchReport r = search::evolve(
      pos, [&](const supernet::SubnetCode& c) { return cost.predict(c); },
      [&](const supernet::SubnetCode& c) { return am.predict(c); }, budgets.values, eo, limits);
  const bool reranked = probe && eo.finalists > 1;
  if (reranked) {
    size_t n = 0;
    for (const auto& b : r.results) n += b.finalists.size();
    Progress progress("re-ranking", n);
    size_t done = 0;
    // The original SuperNet (BatchNorm unfolded), as the sensitivity probes measured it.
    search::rerank(r, [&](const supernet::SubnetCode& c) {
      double a = (*probe)(supernet::decode(pos, c));
      progress.step(++done);
      return a;
    });
  }
  search::make_family_monotone(r);
  auto cand = [&](const search::Candidate& c) {
    nlohmann::json j = {
        {"latency_ms", lm.predict(c.code)},
        {"macs", static_cast<int64_t>(macs.predict(c.code))},
        {"parameters", static_cast<int64_t>(params.predict(c.code))},
        {"accuracy", c.accuracy},
        {"subnet", nlohmann::json::parse(supernet::subnet_to_json(supernet::decode(pos, c.code)))}};
    if (c.measured) j["measured_probe_accuracy"] = *c.measured;
    return j;
  };
  nlohmann::json results = nlohmann::json::array(), front = nlohmann::json::array();
  int changed = 0, raised = 0;
  for (const auto& b : r.results) {
    nlohmann::json j = cand(b.best);
    j["budget"] = b.budget;
    if (budgets.unit == "ms") j["budget_ms"] = b.budget;
    if (eo.strategy == "random") j["feasible_samples"] = b.feasible;
    if (reranked) {
      j["finalists_reranked"] = b.finalists.size();
      j["rerank_changed"] = b.rerank_changed;
    }
    j["raised_to_a_smaller_budgets_pick"] = b.raised;
    changed += b.rerank_changed;
    raised += b.raised;
    results.push_back(j);
  }
  for (const auto& c : r.pareto) front.push_back(cand(c));
  double rate = r.seconds > 0 ? static_cast<double>(r.evaluations) / r.seconds : 0;
  const supernet::SubnetCode max_code = supernet::encode(pos, supernet::max_subnet(s.space()));
  nlohmann::json max_subnet = {{"latency_ms", lm.predict(max_code)},
                               {"macs", static_cast<int64_t>(macs.predict(max_code))},
                               {"parameters", static_cast<int64_t>(params.predict(max_code))},
                               {"accuracy", am.predict(max_code)}};
  for (const auto& a : t.anchors)
    if (a.label == "max") max_subnet["measured_probe_accuracy"] = a.accuracy;
  nlohmann::json out = {{"format", "autotailor-search"},
                        {"device", lut.device},
                        {"estimated_latency", estimated},
                        {"accuracy_metric", t.metric},
                        {"budget_unit", budgets.unit},
                        {"limits", limits_json(budgets)},
                        {"max_subnet", max_subnet},
                        {"options",
                         {{"strategy", eo.strategy},
                          {"population", eo.population},
                          {"generations", eo.generations},
                          {"parent_ratio", eo.parent_ratio},
                          {"mutation_ratio", eo.mutation_ratio},
                          {"mutate_prob", eo.mutate_prob},
                          {"seed", eo.seed},
                          {"rerank", reranked ? eo.finalists : 0}}},
                        {"rerank",
                         {{"finalists_per_budget", reranked ? eo.finalists : 0},
                          {"picks_changed", changed},
                          {"probe_images", reranked ? probe->images() : 0}}},
                        {"budgets_raised_to_a_smaller_budgets_pick", raised},
                        {"evaluations", r.evaluations},
                        {"seconds", r.seconds},
                        {"evaluations_per_second", rate},
                        {"results", results},
                        {"pareto", front}};
  spdlog::info(
      "searched {} {} budget(s): {} candidate evaluations in {:.2f} s ({:.0f}/s), Pareto "
      "front of {}",
      budgets.values.size(), budgets.unit, r.evaluations, r.seconds, rate, r.pareto.size());
  if (reranked)
    spdlog::info(
        "re-ranked {} finalists per budget exactly on {} held-out images: {} of {} picks "
        "changed",
        eo.finalists, probe->images(), changed, r.results.size());
  if (raised)
    spdlog::info("{} budget(s) kept a smaller budget's pick, which {} better", raised,
                 reranked ? "measured" : "was predicted");
  return out;
}

void add_search(CLI::App& app) {
  {
    struct Args {
      std::string dir;
      DataFlags data;
      size_t probe_images = 3000;
      std::string reference = search::kDefaultReference;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = app.add_subcommand(
        "sensitivity", "Measure the accuracy predictor's table (one probe per modification)");
    cmd->add_option("--reference", a->reference,
                    "Subnet the modifications are probed from: max, or mid (middle widths, "
                    "kernels and resolution, every block kept)")
        ->check(CLI::IsMember({"max", "mid"}));
    cmd->add_option("dir", a->dir, "Directory made by `supernet` or `compile`")->required();
    a->data.add(cmd, false);
    cmd->add_option("--probe-images", a->probe_images, "Held-out images per probe")
        ->check(CLI::Range(16, 1000000));
    cmd->callback([a] {
      supernet::Supernet s = supernet::Supernet::load(a->dir);
      DirLock lock(a->dir);
      if (a->data.spec.empty())
        spdlog::warn(
            "no --data: sensitivity measured as agreement with the max subnet on "
            "synthetic inputs (a proxy, not accuracy)");
      measure_sensitivity(s, a->dir, a->data, a->probe_images, a->reference);
    });
  }
  {
    struct Args {
      std::string dir, device;
      BudgetFlags budgets;
      search::EvolutionOptions eo;
      DataFlags data;
      std::string output;
      bool json = false;
    };
    auto a = std::make_shared<Args>();
    a->eo.finalists = 8;
    auto* cmd = app.add_subcommand("search", "Evolutionary search for the best subnet per budget");
    cmd->add_option("dir", a->dir, "Directory made by `supernet` or `compile`")->required();
    cmd->add_option("--device", a->device, "Target device (its LUT must exist)")->required();
    a->budgets.add(cmd, "Latency budgets");
    cmd->add_option("--population", a->eo.population)->check(CLI::Range(2, 100000));
    cmd->add_option("--generations", a->eo.generations)->check(CLI::Range(0, 100000));
    cmd->add_option("--parent-ratio", a->eo.parent_ratio)->check(CLI::Range(0.01, 1.0));
    cmd->add_option("--mutation-ratio", a->eo.mutation_ratio)->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--mutate-prob", a->eo.mutate_prob)->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--seed", a->eo.seed);
    cmd->add_option("--strategy", a->eo.strategy,
                    "evolution, or random (a baseline: population x (generations+1) random "
                    "samples per budget, over-budget ones discarded)")
        ->check(CLI::IsMember({"evolution", "random"}));
    cmd->add_option("-o,--output", a->output,
                    "Where to write the results (default DIR/search.json)");
    cmd->add_flag("--json", a->json, "Print the results as JSON");
    cmd->add_option("--rerank", a->eo.finalists,
                    "Finalists per budget evaluated exactly on the held-out probe images, the best "
                    "measured kept (needs --data; 0 or 1: the predictor's pick)")
        ->capture_default_str()
        ->check(CLI::Range(0, 1000));
    a->data.add(cmd, false);
    cmd->callback([a] {
      supernet::Supernet s = supernet::Supernet::load(a->dir);
      DirLock lock(a->dir);
      std::unique_ptr<AccuracyProbe> probe;
      if (!a->data.spec.empty() && a->eo.finalists > 1) {
        search::SensitivityTable t = search::SensitivityTable::load(sensitivity_path(a->dir));
        probe = std::make_unique<AccuracyProbe>(s, a->dir, a->data, t.probe_images);
      } else if (a->eo.finalists > 1) {
        spdlog::info("no --data: the predictor's pick per budget is kept (no re-ranking)");
      }
      Budgets budgets = a->budgets.resolve(latency_view(s), {});
      nlohmann::json r = run_search(s, a->dir, a->device, budgets, a->eo, probe.get());
      const std::string out =
          a->output.empty() ? (fs::path(a->dir) / "search.json").string() : a->output;
      write_file_atomic(out, r.dump(2) + "\n");
      if (a->json) {
        std::cout << r.dump(2) << "\n";
        return;
      }
      std::string est = r["estimated_latency"].get<bool>() ? " (estimated)" : "";
      for (const auto& b : r["results"])
        std::cout << fmt::format(
            "budget {}: predicted {:8.3f} ms{}, {} MACs, {} parameters, accuracy {:.2f}%\n",
            format_budget(b["budget"].get<double>(), budgets.unit), b["latency_ms"].get<double>(),
            est, b["macs"].get<int64_t>(), b["parameters"].get<int64_t>(),
            100 * b["accuracy"].get<double>());
      std::cout << fmt::format("{} evaluations ({:.0f}/s); Pareto front of {} in {}\n",
                               r["evaluations"].get<int64_t>(),
                               r["evaluations_per_second"].get<double>(), r["pareto"].size(), out);
    });
  }
  {
    struct Args {
      std::string dir;
      DataFlags data;
      int samples = 20;
      bool json = false;
      bool ceiling = false;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = app.add_subcommand("validate-accuracy",
                                   "Compare predicted with measured accuracy on random subnets");
    cmd->add_option("dir", a->dir, "Directory made by `supernet` or `compile`")->required();
    a->data.add(cmd);
    cmd->add_option("--samples", a->samples, "Random subnets to evaluate")
        ->check(CLI::Range(2, 100000));
    cmd->add_flag("--json", a->json, "Print JSON to stdout");
    cmd->add_flag("--ceiling", a->ceiling,
                  "Also evaluate every subnet exactly on the probe images: how well any "
                  "predictor built from them can rank (one more evaluation per subnet)");
    cmd->callback([a] {
      supernet::Supernet s = supernet::Supernet::load(a->dir);
      std::string sp = sensitivity_path(a->dir);
      if (!fs::exists(sp)) fail("{} is missing: run `autotailor sensitivity` first", sp);
      search::SensitivityTable t = search::SensitivityTable::load(sp);
      if (t.metric != "top1")
        fail("{}: measured without data ({}); run `autotailor sensitivity {} --data ...`", sp,
             t.metric, a->dir);
      std::vector<supernet::Position> pos = supernet::positions(s.space());
      search::AccuracyModel am(t, pos, &s.space());
      // The alternatives, scored on the same subnets: what each refinement of pure
      // additivity buys (docs/search.md).
      using Comp = search::AccuracyOptions::Composition;
      std::vector<std::pair<std::string, search::AccuracyModel>> variants = {
          {"raw",
           search::AccuracyModel(t, pos, &s.space(),
                                 {.monotone = false, .significance_z = 0, .calibrate = false})},
          {"monotone_calibrated", search::AccuracyModel(t, pos, &s.space(), {.significance_z = 0})},
          {"additive_monotone_calibrated",
           search::AccuracyModel(t, pos, &s.space(), {.composition = Comp::Additive})}};
      std::vector<std::vector<double>> vpred(variants.size() + 2);
      // Size alone as a predictor (exact counts of the subnet as exported): what the predictor
      // must beat to be worth its probes.
      supernet::Supernet view = latency_view(s);
      latency::LatencyModel count_macs(view, latency::Count::Macs),
          count_params(view, latency::Count::Parameters);
      recorded_data_options(a->dir, a->data);
      train::TrainData d = a->data.open(train::model_shape(s.graph()));
      std::vector<double> pred, meas;
      // The truth's own repeatability: each subnet's accuracy on the test split's two halves.
      std::vector<double> half_a, half_b, probe_exact;
      std::unique_ptr<AccuracyProbe> probe;
      if (a->ceiling) probe = std::make_unique<AccuracyProbe>(s, a->dir, a->data, t.probe_images);
      nlohmann::json rows = nlohmann::json::array();
      Progress progress("evaluating", static_cast<size_t>(a->samples));
      for (int i = 1; i <= a->samples; ++i) {
        supernet::SubnetConfig c = supernet::random_subnet(s.space(), static_cast<uint64_t>(i));
        double p = am.predict(supernet::encode(pos, c));
        train::Accuracy acc =
            train::evaluate(calibrated_subnet(s, c, d, a->data.workers), d, 256, a->data.workers);
        double m = acc.top1;
        pred.push_back(p);
        meas.push_back(m);
        const size_t h = acc.correct.size() / 2;
        half_a.push_back(std::accumulate(acc.correct.begin(), acc.correct.begin() + h, 0.0));
        half_b.push_back(std::accumulate(acc.correct.begin() + h, acc.correct.end(), 0.0));
        nlohmann::json row = {{"subnet", fmt::format("random:{}", i)},
                              {"code", supernet::encode(pos, c)},
                              {"predicted", p},
                              {"measured", m}};
        if (probe) {
          probe_exact.push_back((*probe)(c));
          row["measured_on_probe_images"] = probe_exact.back();
        }
        for (size_t k = 0; k < variants.size(); ++k) {
          vpred[k].push_back(variants[k].second.predict(supernet::encode(pos, c)));
          row["predicted_" + variants[k].first] = vpred[k].back();
        }
        vpred[variants.size()].push_back(count_macs.predict(c));
        vpred[variants.size() + 1].push_back(count_params.predict(c));
        row["macs"] = static_cast<int64_t>(vpred[variants.size()].back());
        row["parameters"] = static_cast<int64_t>(vpred[variants.size() + 1].back());
        rows.push_back(row);
        progress.step(static_cast<size_t>(i));
      }
      double se = 0, gap = 0, worst = 0;
      for (size_t i = 0; i < pred.size(); ++i) {
        se += (pred[i] - meas[i]) * (pred[i] - meas[i]);
        gap += (pred[i] - meas[i]) / static_cast<double>(pred.size());
        worst = std::max(worst, std::abs(pred[i] - meas[i]));
      }
      nlohmann::json j = {{"samples", a->samples},
                          {"kendall_tau", stats::kendall_tau_b(pred, meas)},
                          {"spearman_rho", stats::spearman(pred, meas)},
                          {"rmse", std::sqrt(se / static_cast<double>(pred.size()))},
                          {"mean_gap", gap},
                          {"max_abs_gap", worst},
                          {"evaluation_images", d.source.test->size()},
                          {"probe_images", t.probe_images},
                          {"subnets", rows}};
      nlohmann::json alt = nlohmann::json::object();
      for (size_t k = 0; k < vpred.size(); ++k) {
        if (k >= variants.size()) {  // counts rank, they do not predict a level
          alt[k == variants.size() ? "macs_only" : "parameters_only"] = {
              {"kendall_tau", stats::kendall_tau_b(vpred[k], meas)},
              {"spearman_rho", stats::spearman(vpred[k], meas)}};
          continue;
        }
        double e = 0;
        for (size_t i = 0; i < meas.size(); ++i)
          e += (vpred[k][i] - meas[i]) * (vpred[k][i] - meas[i]);
        alt[variants[k].first] = {{"kendall_tau", stats::kendall_tau_b(vpred[k], meas)},
                                  {"spearman_rho", stats::spearman(vpred[k], meas)},
                                  {"rmse", std::sqrt(e / static_cast<double>(meas.size()))}};
      }
      j["predictors"] = alt;
      // How high any predictor can score against this truth (docs/search.md).
      nlohmann::json ceiling = {{"half_split_kendall_tau", stats::kendall_tau_b(half_a, half_b)},
                                {"half_split_images", d.source.test->size() / 2}};
      if (probe) {
        ceiling["probe_exact_kendall_tau"] = stats::kendall_tau_b(probe_exact, meas);
        ceiling["probe_images"] = probe->images();
      }
      j["ceiling"] = ceiling;
      if (a->json) {
        std::cout << j.dump(2) << "\n";
        return;
      }
      for (const auto& r : rows)
        std::cout << fmt::format("{:<12} predicted {:6.2f}%  measured {:6.2f}%\n",
                                 r["subnet"].get<std::string>(), 100 * r["predicted"].get<double>(),
                                 100 * r["measured"].get<double>());
      std::cout << fmt::format(
          "{} samples: Kendall tau {:.3f}, Spearman rho {:.3f}, RMSE {:.2f} points, predicted "
          "minus measured {:+.2f} points on average (at most {:.2f}) (measured on {} test "
          "images; predictor probed on {} held-out images)\n",
          a->samples, j["kendall_tau"].get<double>(), j["spearman_rho"].get<double>(),
          100 * j["rmse"].get<double>(), 100 * gap, 100 * worst, d.source.test->size(),
          t.probe_images);
      for (const auto& [name, v] : alt.items())
        std::cout << fmt::format(
            "  {:<22} Kendall tau {:.3f}, Spearman rho {:.3f}{}\n", name,
            v["kendall_tau"].get<double>(), v["spearman_rho"].get<double>(),
            v.contains("rmse") ? fmt::format(", RMSE {:.2f}", 100 * v["rmse"].get<double>()) : "");
      std::cout << fmt::format(
          "ceiling: the test split's two halves ({} images each) rank these subnets with Kendall "
          "tau {:.3f} against each other",
          ceiling["half_split_images"].get<size_t>(),
          ceiling["half_split_kendall_tau"].get<double>());
      if (probe)
        std::cout << fmt::format(
            "; exact evaluation on the {} probe images ranks them with tau {:.3f} against the "
            "test split",
            ceiling["probe_images"].get<size_t>(),
            ceiling["probe_exact_kendall_tau"].get<double>());
      std::cout << "\n";
    });
  }
}

}  // namespace autotailor::cli
