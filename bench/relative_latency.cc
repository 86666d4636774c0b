// Relative latency: the in-context LUT and its validation, both measured in units of a paired
// reference (the max subnet, exported), on a machine whose speed drifts.
//
//   bench_relative_latency SUPERNET_DIR [--cycles N] [--samples N] [--blocks 0|1]
//
// Each cycle profiles the space as `profile --method context` does (every covering subnet run
// whole with its steps timed), except that every timed run is followed by one run of the
// reference: a step's entry is the median over its contexts of (step time / that reference
// run). Then `--samples` exported random subnets (random:1..N, as validate-latency) are timed
// in 6 interleaved rounds, each run again followed by a reference run, and the sum of their
// steps' ratios (plus the per-run overhead ratio) is compared with their measured ratio.
// Prints, per cycle, the share within ±10% in ratio units, the same in ms (ratio times the
// reference's median during the profile, against the subnet's own time), and how well the
// measured ratios repeat (even rounds against odd). Written up in docs/latency-results.md.
// With --blocks 1 the pairing is by blocks instead of by runs: a model's runs follow each other
// (warm, as `bench` times it: one warm-up, then the timed runs), then the reference's block of
// runs follows, and the ratio is that of the two blocks' medians.
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autotailor/exec/executor.h"
#include "autotailor/exec/timing.h"
#include "autotailor/export/export.h"
#include "autotailor/import/onnx_import.h"
#include "autotailor/latency/latency.h"
#include "autotailor/supernet/supernet.h"

using namespace autotailor;
using Clock = std::chrono::steady_clock;

namespace {

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
double median(std::vector<double> v) {
  return exec::summarize(std::move(v)).median_ms;
}

struct Loaded {
  std::unique_ptr<exec::Executor> ex;
  std::vector<at::Tensor> in;
};

Loaded load_export(const supernet::Supernet& s, const supernet::SubnetConfig& c,
                   const std::string& file) {
  export_subnet(s, c, file);
  std::shared_ptr<const ir::Graph> g = import_onnx(file);
  std::filesystem::remove(file);
  return {std::make_unique<exec::Executor>(g), exec::random_inputs(*g, 1)};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: {} SUPERNET_DIR [--cycles N] [--samples N]\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  int cycles = 3, samples = 20, blocks = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    int v = std::atoi(argv[i + 1]);
    if (k == "--cycles" && v > 0) {
      cycles = v;
    } else if (k == "--samples" && v > 0) {
      samples = v;
    } else if (k == "--blocks" && (v == 0 || v == 1) && std::string(argv[i + 1]).size() == 1) {
      blocks = v;
    } else {
      fmt::print(stderr, "{}: unknown option or bad value {} {}\n", argv[0], k, argv[i + 1]);
      return 2;
    }
  }
  try {
    at::set_num_threads(1);
    supernet::Supernet s = supernet::Supernet::load(dir);
    std::string tmp =
        (std::filesystem::temp_directory_path() / fmt::format("autotailor-relative.{}", ::getpid()))
            .string();
    Loaded ref = load_export(s, supernet::max_subnet(s.space()), tmp + ".reference.onnx");
    latency::SpaceConfigs cs = latency::unique_configs(s);
    c10::InferenceMode guard;
    fmt::print("{}: {} configurations through {} covering subnets; {} cycles, {} samples\n", dir,
               cs.configs.size(), cs.covering.size(), cycles, samples);
    for (int cycle = 1; cycle <= cycles; ++cycle) {
      auto start = Clock::now();
      std::map<std::string, std::vector<double>> per_context;
      std::vector<double> overhead, ref_profile;
      for (size_t i = 0; i < cs.covering.size(); ++i) {
        std::shared_ptr<const ir::Graph> g = s.derive(cs.covering[i]);
        exec::Executor ex(g);
        std::vector<at::Tensor> in = exec::random_inputs(*g, 1);
        const std::vector<std::string>& keys = cs.covering_keys[i];
        std::vector<std::vector<double>> ratios(keys.size());
        std::vector<double> whole, sum;
        if (blocks) {
          std::vector<double> whole_ms;
          auto steps = exec::time_steps(ex, in, 1, 10, 0.0, 10, &whole_ms);
          double r = exec::time_runs(*ref.ex, ref.in, 1, 5, 0.0, 5).median_ms;
          ref_profile.push_back(r);
          double total = 0;
          for (size_t k = 0; k < keys.size(); ++k) {
            ratios[k].push_back(median(steps[k]) / r);
            total += median(steps[k]) / r;
          }
          whole.push_back(median(whole_ms) / r);
          sum.push_back(total);
        } else {
          for (int w = 0; w < 2; ++w) {
            ex.run(in);
            ref.ex->run(ref.in);
          }
          std::vector<double> step_ms;
          for (int p = 0; p < 10; ++p) {
            ex.set_step_timer(&step_ms);
            auto a = Clock::now();
            ex.run(in);
            auto b = Clock::now();
            ex.set_step_timer(nullptr);
            ref.ex->run(ref.in);
            double r = ms_between(b, Clock::now());
            ref_profile.push_back(r);
            double total = 0;
            for (size_t k = 0; k < keys.size(); ++k) {
              ratios[k].push_back(step_ms[k] / r);
              total += step_ms[k] / r;
            }
            whole.push_back(ms_between(a, b) / r);
            sum.push_back(total);
          }
        }
        for (size_t k = 0; k < keys.size(); ++k) per_context[keys[k]].push_back(median(ratios[k]));
        overhead.push_back(median(whole) - median(sum));
      }
      std::map<std::string, double> lut;
      for (auto& [k, v] : per_context) lut[k] = median(v);
      double over = median(overhead), ref_ms = median(ref_profile);
      double profile_s = ms_between(start, Clock::now()) / 1000;

      std::vector<Loaded> subnets;
      std::vector<double> predicted;
      for (int i = 1; i <= samples; ++i) {
        supernet::SubnetConfig c = supernet::random_subnet(s.space(), static_cast<uint64_t>(i));
        subnets.push_back(load_export(s, c, fmt::format("{}.{}.onnx", tmp, i)));
        double p = over;
        for (const std::string& k : latency::step_keys(*s.derive(c))) p += lut.at(k);
        predicted.push_back(p);
      }
      std::vector<std::vector<double>> ratio_rounds(subnets.size()), ms_rounds(subnets.size());
      std::vector<double> ref_validation;
      for (int r = 0; r < 6; ++r)
        for (size_t k = 0; k < subnets.size(); ++k) {
          std::vector<double> q, m;
          if (blocks) {
            double sm = exec::time_runs(*subnets[k].ex, subnets[k].in, 1, 5, 0.0, 5).median_ms;
            double rr = exec::time_runs(*ref.ex, ref.in, 1, 5, 0.0, 5).median_ms;
            q.push_back(sm / rr);
            m.push_back(sm);
            ref_validation.push_back(rr);
          } else {
            subnets[k].ex->run(subnets[k].in);
            ref.ex->run(ref.in);
            for (int p = 0; p < 5; ++p) {
              auto a = Clock::now();
              subnets[k].ex->run(subnets[k].in);
              auto b = Clock::now();
              ref.ex->run(ref.in);
              double rr = ms_between(b, Clock::now());
              q.push_back(ms_between(a, b) / rr);
              m.push_back(ms_between(a, b));
              ref_validation.push_back(rr);
            }
          }
          ratio_rounds[k].push_back(median(q));
          ms_rounds[k].push_back(median(m));
        }
      int within_ratio = 0, within_ms = 0, repeat = 0;
      std::vector<double> errors;
      for (size_t k = 0; k < subnets.size(); ++k) {
        double measured = median(ratio_rounds[k]);
        std::vector<double> even, odd;
        for (size_t r = 0; r < ratio_rounds[k].size(); ++r)
          (r % 2 ? odd : even).push_back(ratio_rounds[k][r]);
        repeat += std::fabs(median(odd) / median(even) - 1) <= 0.10;
        double e = predicted[k] / measured - 1;
        errors.push_back(e);
        within_ratio += std::fabs(e) <= 0.10;
        within_ms += std::fabs(predicted[k] * ref_ms / median(ms_rounds[k]) - 1) <= 0.10;
      }
      fmt::print(
          "cycle {}: profiled in {:.1f} s; reference {:.3f} ms while profiling, {:.3f} ms while "
          "validating; within ±10%: {}/{} in reference units (median error {:+.1f}%), {}/{} in "
          "ms; measured ratios repeat within ±10% for {}/{}\n",
          cycle, profile_s, ref_ms, median(ref_validation), within_ratio, samples,
          100 * median(errors), within_ms, samples, repeat, samples);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}\n", e.what());
    return 1;
  }
  return 0;
}
