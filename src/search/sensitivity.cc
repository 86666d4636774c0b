#include <algorithm>
#include <chrono>
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

SensitivityTable measure_sensitivity(
    const supernet::SearchSpace& s,
    const std::function<double(const supernet::SubnetConfig&)>& accuracy,
    const std::function<void(size_t, size_t)>& progress, const std::string& reference) {
  auto start = std::chrono::steady_clock::now();
  std::vector<supernet::Position> pos = supernet::positions(s);
  supernet::SubnetCode ref = reference_code(pos, reference);
  size_t total = 1;
  for (const auto& p : pos) total += p.choices.size() - 1;
  SensitivityTable t;
  t.reference = reference;
  t.base_accuracy = accuracy(supernet::decode(pos, ref));
  size_t done = 1;
  if (progress) progress(done, total);
  for (size_t i = 0; i < pos.size(); ++i) {
    for (size_t c = 0; c < pos[i].choices.size(); ++c) {
      if (c == ref[i]) continue;
      supernet::SubnetCode code = ref;
      code[i] = static_cast<uint8_t>(c);
      double a = accuracy(supernet::decode(pos, code));
      t.entries.push_back({pos[i].kind, pos[i].name, pos[i].choices[c], a, a - t.base_accuracy});
      if (progress) progress(++done, total);
    }
  }
  t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return t;
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
                           e.at("accuracy").get<double>(), e.at("delta").get<double>()});
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
                  {"delta", e.delta}});
  nlohmann::json j = {{"format", "autotailor-sensitivity"},
                      {"metric", metric},
                      {"reference", reference},
                      {"base_accuracy", base_accuracy},
                      {"probe_images", probe_images},
                      {"probes", entries.size() + 1},
                      {"seconds", seconds},
                      {"entries", es}};
  write_file_atomic(path, j.dump(1) + "\n");
}

AccuracyModel::AccuracyModel(const SensitivityTable& t, const std::vector<supernet::Position>& pos,
                             const supernet::SearchSpace* space, AccuracyOptions options)
    : base_(t.base_accuracy), options_(options) {
  delta_.resize(pos.size());
  ratio_.resize(pos.size());
  const supernet::SubnetCode ref = reference_code(pos, t.reference);
  for (size_t i = 0; i < pos.size(); ++i) {
    delta_[i].assign(pos[i].choices.size(), 0.0);
    ratio_[i].assign(pos[i].choices.size(), 1.0);
    for (size_t c = 0; c < pos[i].choices.size(); ++c) {
      if (c == ref[i]) continue;
      auto it = std::find_if(t.entries.begin(), t.entries.end(), [&](const auto& e) {
        return e.kind == pos[i].kind && e.name == pos[i].name && e.value == pos[i].choices[c];
      });
      if (it == t.entries.end())
        fail("the sensitivity table has no entry for {} '{}' = {}: measure it again",
             supernet::kind_name(pos[i].kind), pos[i].name, pos[i].choices[c]);
      delta_[i][c] = it->delta;
      ratio_[i][c] = base_ > 0 ? std::max(it->accuracy, 1e-6) / base_ : 1.0;
    }
  }
  depth_position_.assign(pos.size(), -1);
  block_rank_.assign(pos.size(), 0);
  depth_choices_.resize(pos.size());
  if (!space || !options_.mask_skipped_blocks) return;
  // Which skippable block (stage depth position, rank) each node lives in.
  std::map<std::string, std::pair<int, int64_t>> where;
  for (size_t i = 0; i < pos.size(); ++i) {
    if (pos[i].kind != supernet::Position::Kind::Depth) continue;
    depth_choices_[i] = pos[i].choices;
    for (const supernet::Stage& st : space->stages) {
      if (st.name != pos[i].name) continue;
      for (size_t r = 0; r < st.blocks.size(); ++r)
        for (const std::string& n : space->blocks[static_cast<size_t>(st.blocks[r])].nodes)
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
      const supernet::WidthGroup* g = space->group(pos[i].name);
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

double AccuracyModel::predict(const supernet::SubnetCode& code) const {
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
  // Accuracy (or agreement) is a share: changes from a mid reference may compound past 1.
  return std::clamp(mult ? base_ * prod : base_ + sum, 0.0, 1.0);
}

}  // namespace autotailor::search
