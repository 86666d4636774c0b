// Budgets of `search` and `compile`: latency (--latency-ms), MACs (--macs) or parameters
// (--params), and limits on MACs and parameters beside a latency budget (--max-macs,
// --max-params). Counts are absolute (with an optional K, M or G suffix) or `N%` of the max
// subnet's, which is the original model as exported (BatchNorm folded).
#pragma once

#include <CLI/CLI.hpp>

#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "autotailor/common/error.h"
#include "autotailor/latency/latency.h"
#include "autotailor/supernet/supernet.h"

namespace autotailor::cli {

// A resolved family request: one unit for every budget, and the limits every variant meets.
struct Budgets {
  std::string unit = "ms";  // "ms", "macs" or "parameters"
  std::vector<double> values;
  double max_macs = std::numeric_limits<double>::infinity();
  double max_params = std::numeric_limits<double>::infinity();
};

// "300M", "1.5G", "25%", "12000": the number, the multiplier of its suffix and whether it is a
// percentage. False when the text is none of these or the number is not positive and finite.
inline bool parse_count(const std::string& text, double& value, bool& percent) {
  if (text.empty()) return false;
  std::string t = text;
  double mult = 1;
  percent = false;
  switch (t.back()) {
    case '%':
      percent = true;
      break;
    case 'k':
    case 'K':
      mult = 1e3;
      break;
    case 'm':
    case 'M':
      mult = 1e6;
      break;
    case 'g':
    case 'G':
      mult = 1e9;
      break;
    default:
      break;
  }
  if (percent || mult != 1) t.pop_back();
  double v = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || end != t.data() + t.size() || !std::isfinite(v) || !(v > 0))
    return false;
  value = v * mult;
  return std::isfinite(value);
}

struct BudgetFlags {
  std::vector<double> latency_ms;
  std::vector<std::string> macs, params;
  std::string max_macs, max_params;

  void add(CLI::App* cmd, const std::string& latency_help) {
    CLI::Validator count(
        [](std::string& s) {
          double v = 0;
          bool pct = false;
          return parse_count(s, v, pct)
                     ? std::string()
                     : "'" + s + "' is not a positive count (12000, 300K, 1.5M, 2G) or N%";
        },
        "COUNT|N%");
    CLI::Validator finite(
        [](std::string& s) {
          double v = 0;
          auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
          return ec == std::errc() && end == s.data() + s.size() && std::isfinite(v) && v > 0
                     ? std::string()
                     : "'" + s + "' is not a positive finite number of milliseconds";
        },
        "MS");
    auto* lat =
        cmd->add_option("--latency-ms", latency_ms, latency_help)->delimiter(',')->check(finite);
    auto* m = cmd->add_option("--macs", macs,
                              "MACs budgets instead of latency: counts (300M, 1.2G) or N% of the "
                              "original model's")
                  ->delimiter(',')
                  ->check(count);
    auto* p = cmd->add_option("--params", params,
                              "Parameter budgets instead of latency: counts (2.5M) or N% of the "
                              "original model's")
                  ->delimiter(',')
                  ->check(count);
    lat->excludes(m)->excludes(p);
    m->excludes(p);
    cmd->add_option("--max-macs", max_macs, "A limit on MACs every variant also meets")
        ->check(count);
    cmd->add_option("--max-params", max_params, "A limit on parameters every variant also meets")
        ->check(count);
  }

  bool any() const { return !latency_ms.empty() || !macs.empty() || !params.empty(); }

  // Counts against `view`, the SuperNet as exported. `default_ms` for no budget at all (compile:
  // fractions of the max subnet's latency); empty: a clear error.
  Budgets resolve(const supernet::Supernet& view, const std::vector<double>& default_ms) const {
    Budgets b;
    std::map<latency::Count, double> totals;  // each count's model built once, when N% needs it
    auto total = [&](latency::Count what) {
      auto it = totals.find(what);
      if (it == totals.end())
        it = totals
                 .emplace(
                     what,
                     latency::LatencyModel(view, what).predict(supernet::max_subnet(view.space())))
                 .first;
      return it->second;
    };
    auto counts = [&](const std::string& option, const std::string& text, latency::Count what) {
      double v = 0;
      bool pct = false;
      if (!parse_count(text, v, pct))
        fail("{} {}: not a positive count (12000, 300K, 1.5M, 2G) or N%", option, text);
      return pct ? std::floor(v / 100 * total(what)) : v;
    };
    if (!macs.empty()) {
      b.unit = "macs";
      for (const auto& t : macs) b.values.push_back(counts("--macs", t, latency::Count::Macs));
    } else if (!params.empty()) {
      b.unit = "parameters";
      for (const auto& t : params)
        b.values.push_back(counts("--params", t, latency::Count::Parameters));
    } else {
      b.values = latency_ms.empty() ? default_ms : latency_ms;
    }
    if (b.values.empty())  // a usage error: exit 2 like CLI11's own
      throw CLI::ValidationError("budgets", "give --latency-ms, --macs or --params");
    if (!max_macs.empty()) b.max_macs = counts("--max-macs", max_macs, latency::Count::Macs);
    if (!max_params.empty())
      b.max_params = counts("--max-params", max_params, latency::Count::Parameters);
    return b;
  }
};

// "0.364 ms", "1.2G MACs", "2.50M parameters": a budget in its unit, for messages.
inline std::string format_budget(double v, const std::string& unit) {
  if (unit == "ms") return fmt::format("{:.3f} ms", v);
  std::string u = unit == "macs" ? "MACs" : unit;
  if (v >= 1e9) return fmt::format("{:.3f}G {}", v / 1e9, u);
  if (v >= 1e6) return fmt::format("{:.3f}M {}", v / 1e6, u);
  if (v >= 1e3) return fmt::format("{:.3f}K {}", v / 1e3, u);
  return fmt::format("{:.0f} {}", v, u);
}

}  // namespace autotailor::cli
