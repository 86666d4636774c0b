#include <fmt/format.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "../common/json_document.h"
#include "autotailor/common/error.h"
#include "autotailor/common/files.h"
#include "autotailor/search/search.h"

namespace autotailor::search {

namespace {

supernet::Position::Kind kind_from(const std::string& k, const std::string& source) {
  using K = supernet::Position::Kind;
  for (K x : {K::Width, K::Kernel, K::Resolution, K::Depth})
    if (k == supernet::kind_name(x)) return x;
  fail("{}: unknown position kind '{}'", source, k);
}

}  // namespace

supernet::SubnetCode reference_code(const std::vector<supernet::Position>& pos,
                                    const std::string& reference) {
  if (reference != "max" && reference != "mid")
    fail("unknown sensitivity reference '{}' (max or mid)", reference);
  supernet::SubnetCode code(pos.size());
  for (size_t i = 0; i < pos.size(); ++i) {
    const size_t n = pos[i].choices.size();
    // mid keeps every block: a width or kernel inside a block is only measurable while it runs.
    bool last = reference == "max" || pos[i].kind == supernet::Position::Kind::Depth;
    code[i] = static_cast<uint8_t>(last ? n - 1 : n / 2);
  }
  return code;
}

namespace {

std::vector<SensitivityTable::Setting> settings_of(const std::vector<supernet::Position>& pos,
                                                   const supernet::SubnetCode& code) {
  std::vector<SensitivityTable::Setting> out;
  for (size_t i = 0; i < pos.size(); ++i)
    out.push_back({pos[i].kind, pos[i].name, pos[i].choices[code[i]]});
  return out;
}

// Images only `ref` got right, and only `probe` got right; -1 without per-image results.
std::pair<int64_t, int64_t> discordant(const std::vector<uint8_t>& ref,
                                       const std::vector<uint8_t>& probe) {
  if (ref.empty() || ref.size() != probe.size()) return {-1, -1};
  int64_t lost = 0, gained = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    lost += ref[i] && !probe[i];
    gained += !ref[i] && probe[i];
  }
  return {lost, gained};
}

}  // namespace

SensitivityTable measure_sensitivity(const supernet::SearchSpace& s, const SubnetProbe& probe,
                                     const std::function<void(size_t, size_t)>& progress,
                                     const std::string& reference) {
  auto start = std::chrono::steady_clock::now();
  std::vector<supernet::Position> pos = supernet::positions(s);
  supernet::SubnetCode ref = reference_code(pos, reference);
  // The anchors: the max, the mid, the min and seeded random subnets, each measured whole.
  std::vector<std::pair<std::string, supernet::SubnetCode>> anchors = {
      {"max", supernet::encode(pos, supernet::max_subnet(s))},
      {"mid", supernet::encode(pos, supernet::mid_subnet(s))},
      {"min", supernet::encode(pos, supernet::min_subnet(s))}};
  for (int k = 1; k <= kAnchorRandom; ++k) {
    uint64_t seed = kAnchorSeed + static_cast<uint64_t>(k);
    anchors.emplace_back(fmt::format("random:{}", seed),
                         supernet::encode(pos, supernet::random_subnet(s, seed)));
  }
  size_t total = 1 + anchors.size();
  for (const auto& p : pos) total += p.choices.size() - 1;
  SensitivityTable t;
  t.reference = reference;
  const ProbeResult base = probe(supernet::decode(pos, ref));
  t.base_accuracy = base.accuracy;
  size_t done = 1;
  if (progress) progress(done, total);
  for (size_t i = 0; i < pos.size(); ++i) {
    for (size_t c = 0; c < pos[i].choices.size(); ++c) {
      if (c == ref[i]) continue;
      supernet::SubnetCode code = ref;
      code[i] = static_cast<uint8_t>(c);
      ProbeResult r = probe(supernet::decode(pos, code));
      auto [lost, gained] = discordant(base.correct, r.correct);
      t.entries.push_back({pos[i].kind, pos[i].name, pos[i].choices[c], r.accuracy,
                           r.accuracy - t.base_accuracy, lost, gained});
      if (progress) progress(++done, total);
    }
  }
  for (const auto& [label, code] : anchors) {
    // The reference is an anchor already measured: mid from mid, max from max.
    double a = code == ref ? t.base_accuracy : probe(supernet::decode(pos, code)).accuracy;
    t.anchors.push_back({label, settings_of(pos, code), a});
    if (progress) progress(++done, total);
  }
  t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return t;
}

SensitivityTable measure_sensitivity(
    const supernet::SearchSpace& s,
    const std::function<double(const supernet::SubnetConfig&)>& accuracy,
    const std::function<void(size_t, size_t)>& progress, const std::string& reference) {
  return measure_sensitivity(
      s,
      [&](const supernet::SubnetConfig& c) {
        return ProbeResult{accuracy(c), {}};
      },
      progress, reference);
}

std::string AccuracyOptions::fingerprint() const {
  return fmt::format("{}|{}|{}|{}|{}",
                     composition == Composition::Additive ? "additive" : "multiplicative",
                     mask_skipped_blocks, monotone, significance_z, calibrate);
}

std::vector<double> isotonic_fit(const std::vector<double>& y) {
  // Blocks of (sum, count); a block whose mean falls below its predecessor's is merged into it.
  std::vector<std::pair<double, size_t>> blocks;
  for (double v : y) {
    blocks.emplace_back(v, 1);
    while (blocks.size() > 1) {
      auto& [s1, n1] = blocks[blocks.size() - 2];
      auto [s2, n2] = blocks.back();
      if (s1 / static_cast<double>(n1) <= s2 / static_cast<double>(n2)) break;
      s1 += s2;
      n1 += n2;
      blocks.pop_back();
    }
  }
  std::vector<double> out;
  for (auto [sum, n] : blocks) out.insert(out.end(), n, sum / static_cast<double>(n));
  return out;
}

SensitivityTable SensitivityTable::load(const std::string& path) {
  nlohmann::json j =
      parse_document(read_file(path), path, "autotailor-sensitivity", "a sensitivity table");
  SensitivityTable t;
  try {
    t.metric = j.at("metric").get<std::string>();
    t.reference = j.value("reference", std::string("max"));
    t.base_accuracy = j.at("base_accuracy").get<double>();
    t.probe_images = j.at("probe_images").get<size_t>();
    t.seconds = j.value("seconds", 0.0);
    for (const auto& e : j.at("entries"))
      t.entries.push_back({kind_from(e.at("kind").get<std::string>(), path),
                           e.at("name").get<std::string>(), e.at("value").get<int64_t>(),
                           e.at("accuracy").get<double>(), e.at("delta").get<double>(),
                           e.value("lost", int64_t{-1}), e.value("gained", int64_t{-1})});
    for (const auto& a : j.value("anchors", nlohmann::json::array())) {
      SensitivityTable::Anchor an{
          a.at("label").get<std::string>(), {}, a.at("accuracy").get<double>()};
      for (const auto& st : a.at("subnet"))
        an.settings.push_back({kind_from(st.at("kind").get<std::string>(), path),
                               st.at("name").get<std::string>(), st.at("value").get<int64_t>()});
      t.anchors.push_back(std::move(an));
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed sensitivity table ({})", path, e.what());
  }
  return t;
}

void SensitivityTable::save(const std::string& path) const {
  nlohmann::json es = nlohmann::json::array();
  for (const Entry& e : entries)
    es.push_back({{"kind", supernet::kind_name(e.kind)},
                  {"name", e.name},
                  {"value", e.value},
                  {"accuracy", e.accuracy},
                  {"delta", e.delta},
                  {"lost", e.lost},
                  {"gained", e.gained}});
  nlohmann::json as = nlohmann::json::array();
  for (const Anchor& a : anchors) {
    nlohmann::json st = nlohmann::json::array();
    for (const Setting& x : a.settings)
      st.push_back({{"kind", supernet::kind_name(x.kind)}, {"name", x.name}, {"value", x.value}});
    as.push_back({{"label", a.label}, {"accuracy", a.accuracy}, {"subnet", st}});
  }
  nlohmann::json j = {{"format", "autotailor-sensitivity"},
                      {"metric", metric},
                      {"reference", reference},
                      {"base_accuracy", base_accuracy},
                      {"probe_images", probe_images},
                      {"probes", entries.size() + 1},
                      {"seconds", seconds},
                      {"entries", es},
                      {"anchors", as}};
  write_file_atomic(path, j.dump(1) + "\n");
}

AccuracyModel::AccuracyModel(const SensitivityTable& t, const std::vector<supernet::Position>& pos,
                             const supernet::SearchSpace* space, AccuracyOptions options)
    : base_(t.base_accuracy), options_(options) {
  delta_.resize(pos.size());
  ratio_.resize(pos.size());
  const supernet::SubnetCode ref = reference_code(pos, t.reference);
  for (size_t i = 0; i < pos.size(); ++i) {
    std::vector<double> acc(pos[i].choices.size(), base_);
    for (size_t c = 0; c < pos[i].choices.size(); ++c) {
      if (c == ref[i]) continue;
      auto it = std::find_if(t.entries.begin(), t.entries.end(), [&](const auto& e) {
        return e.kind == pos[i].kind && e.name == pos[i].name && e.value == pos[i].choices[c];
      });
      if (it == t.entries.end())
        fail("the sensitivity table has no entry for {} '{}' = {}: measure it again",
             supernet::kind_name(pos[i].kind), pos[i].name, pos[i].choices[c]);
      acc[c] = it->accuracy;
      // McNemar's z on the images the two disagree on: a change the pairs do not show is noise.
      const int64_t n = it->lost + it->gained;
      if (options_.significance_z > 0 && it->lost >= 0 &&
          (n == 0 || std::abs(static_cast<double>(it->gained - it->lost)) <
                         options_.significance_z * std::sqrt(static_cast<double>(n))))
        acc[c] = base_;
    }
    if (options_.monotone) {
      // Non-decreasing over the choices, shifted so the reference keeps its measured value.
      acc = isotonic_fit(acc);
      const double shift = base_ - acc[ref[i]];
      for (double& a : acc) a += shift;
    }
    delta_[i].resize(acc.size());
    ratio_[i].resize(acc.size());
    for (size_t c = 0; c < acc.size(); ++c) {
      delta_[i][c] = acc[c] - base_;
      ratio_[i][c] = base_ > 0 ? std::max(acc[c], 1e-6) / base_ : 1.0;
    }
  }
  depth_position_.assign(pos.size(), -1);
  block_rank_.assign(pos.size(), 0);
  depth_choices_.resize(pos.size());
  if (space && options_.mask_skipped_blocks) {
    mask_blocks(*space, pos);
    if (options_.monotone) make_depth_monotone();
  }
  if (options_.calibrate) fit_calibration(t, pos);
}

void AccuracyModel::mask_blocks(const supernet::SearchSpace& space,
                                const std::vector<supernet::Position>& pos) {
  // Which skippable block (stage depth position, rank) each node lives in.
  std::map<std::string, std::pair<int, int64_t>> where;
  for (size_t i = 0; i < pos.size(); ++i) {
    if (pos[i].kind != supernet::Position::Kind::Depth) continue;
    depth_choices_[i] = pos[i].choices;
    for (const supernet::Stage& st : space.stages) {
      if (st.name != pos[i].name) continue;
      for (size_t r = 0; r < st.blocks.size(); ++r)
        for (const std::string& n : space.blocks[static_cast<size_t>(st.blocks[r])].nodes)
          where[n] = {static_cast<int>(i), static_cast<int64_t>(r)};
    }
  }
  auto inside =
      [&](const std::vector<std::string>& nodes) -> std::optional<std::pair<int, int64_t>> {
    std::optional<std::pair<int, int64_t>> at;
    for (const std::string& n : nodes) {
      auto w = where.find(n);
      if (w == where.end() || (at && *at != w->second)) return std::nullopt;
      at = w->second;
    }
    return at;
  };
  for (size_t i = 0; i < pos.size(); ++i) {
    std::optional<std::pair<int, int64_t>> at;
    if (pos[i].kind == supernet::Position::Kind::Width) {
      const supernet::WidthGroup* g = space.group(pos[i].name);
      if (!g) continue;
      std::vector<std::string> nodes = g->members;
      nodes.insert(nodes.end(), g->producers.begin(), g->producers.end());
      at = inside(nodes);
    } else if (pos[i].kind == supernet::Position::Kind::Kernel) {
      at = inside({pos[i].name});
    }
    if (at) {
      depth_position_[i] = at->first;
      block_rank_[i] = at->second;
    }
  }
}

// With masking, keeping one more block brings its inside positions into the score. So that a
// deeper subnet is never predicted below a shallower one it contains, each depth value is at most
// the next one's combined with the lowest value of every position the next one brings in.
void AccuracyModel::make_depth_monotone() {
  for (size_t dp = 0; dp < depth_choices_.size(); ++dp) {
    const std::vector<int64_t>& d = depth_choices_[dp];
    if (d.size() < 2) continue;  // not a depth position
    for (size_t j = d.size() - 1; j-- > 0;) {
      double worst_delta = 0, worst_ratio = 1;
      for (size_t i = 0; i < delta_.size(); ++i)
        if (depth_position_[i] == static_cast<int>(dp) && block_rank_[i] >= d[j] &&
            block_rank_[i] < d[j + 1]) {
          worst_delta += *std::min_element(delta_[i].begin(), delta_[i].end());
          worst_ratio *= *std::min_element(ratio_[i].begin(), ratio_[i].end());
        }
      // A margin far below any accuracy's resolution, so that rounding cannot invert the order.
      delta_[dp][j] = std::min(delta_[dp][j], delta_[dp][j + 1] + worst_delta - 1e-12);
      ratio_[dp][j] = std::min(ratio_[dp][j], ratio_[dp][j + 1] * worst_ratio * (1 - 1e-12));
    }
  }
}

void AccuracyModel::fit_calibration(const SensitivityTable& t,
                                    const std::vector<supernet::Position>& pos) {
  std::vector<std::pair<double, double>> pts;  // (raw score, measured accuracy)
  std::optional<double> max_measured;
  for (const SensitivityTable::Anchor& a : t.anchors) {
    supernet::SubnetCode code(pos.size());
    bool fits = true;
    for (size_t i = 0; i < pos.size(); ++i) {
      code[i] = static_cast<uint8_t>(pos[i].choices.size() - 1);
      for (const auto& st : a.settings) {
        if (st.kind != pos[i].kind || st.name != pos[i].name) continue;
        auto c = std::find(pos[i].choices.begin(), pos[i].choices.end(), st.value);
        fits = fits && c != pos[i].choices.end();
        if (c != pos[i].choices.end()) code[i] = static_cast<uint8_t>(c - pos[i].choices.begin());
      }
    }
    if (!fits) continue;
    pts.emplace_back(raw(code), a.accuracy);
    if (a.label == "max") max_measured = a.accuracy;
  }
  std::sort(pts.begin(), pts.end());
  // Anchors with the same raw score are one point at their mean accuracy.
  std::vector<std::pair<double, double>> merged;
  std::vector<size_t> count;
  for (const auto& [r, a] : pts) {
    if (!merged.empty() && merged.back().first == r) {
      merged.back().second += a;
      ++count.back();
    } else {
      merged.emplace_back(r, a);
      count.push_back(1);
    }
  }
  if (merged.size() < 2) return;  // nothing to map with: the raw score stands
  std::vector<double> acc;
  for (size_t k = 0; k < merged.size(); ++k)
    acc.push_back(merged[k].second / static_cast<double>(count[k]));
  acc = isotonic_fit(acc);
  for (size_t k = 0; k < merged.size(); ++k) calibration_.emplace_back(merged[k].first, acc[k]);
  cap_ = max_measured ? *max_measured : acc.back();
}

double AccuracyModel::raw(const supernet::SubnetCode& code) const {
  const bool mult = options_.composition == AccuracyOptions::Composition::Multiplicative;
  double sum = 0, prod = 1;
  for (size_t i = 0; i < delta_.size(); ++i) {
    int dp = depth_position_[i];
    if (dp >= 0 &&
        depth_choices_[static_cast<size_t>(dp)][code[static_cast<size_t>(dp)]] <= block_rank_[i])
      continue;  // inside a block this subnet skips
    if (mult)
      prod *= ratio_[i][code[i]];
    else
      sum += delta_[i][code[i]];
  }
  return mult ? base_ * prod : base_ + sum;
}

double AccuracyModel::predict(const supernet::SubnetCode& code) const {
  const double r = raw(code);
  // Accuracy (or agreement) is a share: changes from a mid reference may compound past 1.
  if (calibration_.empty()) return std::clamp(r, 0.0, 1.0);
  const auto& c = calibration_;
  double a;
  if (r <= c.front().first) {
    a = c.front().second;
  } else if (r >= c.back().first) {
    a = c.back().second;
  } else {
    auto hi = std::upper_bound(c.begin(), c.end(), r,
                               [](double v, const auto& p) { return v < p.first; });
    auto lo = hi - 1;
    a = lo->second + (hi->second - lo->second) * (r - lo->first) / (hi->first - lo->first);
  }
  // Where the fit is flat, the raw score still orders subnets (a nudge far below any
  // accuracy's resolution), and nothing exceeds the measured max subnet.
  a = std::min(a + 1e-9 * (r - c.back().first), cap_);
  return std::clamp(a, 0.0, 1.0);
}

}  // namespace autotailor::search
