#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <random>

#include "../common/json_document.h"
#include "autotailor/common/error.h"
#include "autotailor/common/files.h"
#include "autotailor/supernet/supernet.h"

namespace autotailor::supernet {

namespace {
template <class Pick>
SubnetConfig pick_each(const SearchSpace& s, Pick pick) {
  SubnetConfig c;
  for (const WidthGroup& w : s.groups)
    if (w.elastic()) c.widths[w.name] = pick(w.choices);
  for (const Stage& st : s.stages)
    if (st.choices.size() > 1) c.depths[st.name] = pick(st.choices);
  for (const KernelChoice& k : s.kernels)
    if (k.choices.size() > 1) c.kernels[k.node] = pick(k.choices);
  if (s.resolutions.size() > 1) c.resolution = pick(s.resolutions);
  return c;
}
}  // namespace

SubnetConfig max_subnet(const SearchSpace& s) {
  return pick_each(s, [](const std::vector<int64_t>& v) { return v.back(); });
}

SubnetConfig min_subnet(const SearchSpace& s) {
  return pick_each(s, [](const std::vector<int64_t>& v) { return v.front(); });
}

SubnetConfig random_subnet(const SearchSpace& s, uint64_t seed) {
  std::mt19937_64 rng(seed);
  return pick_each(s, [&](const std::vector<int64_t>& v) {
    return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
  });
}

std::string subnet_to_json(const SubnetConfig& c, int indent) {
  nlohmann::json j = {{"format", "autotailor-subnet"},
                      {"resolution", c.resolution},
                      {"widths", c.widths},
                      {"depths", c.depths},
                      {"kernels", c.kernels}};
  return j.dump(indent);
}

SubnetConfig subnet_from_json(const std::string& text, const std::string& source,
                              const SearchSpace& s) {
  nlohmann::json j = parse_document(text, source, "autotailor-subnet", "a subnet config");
  auto check = [&](const std::vector<int64_t>& choices, int64_t v, const std::string& what) {
    if (std::find(choices.begin(), choices.end(), v) == choices.end())
      fail("{}: {} = {} is not one of [{}]", source, what, v, fmt::join(choices, ", "));
  };
  // Named locals: .items() of a temporary would iterate a destroyed object.
  const nlohmann::json none = nlohmann::json::object();
  const nlohmann::json& widths = j.contains("widths") ? j["widths"] : none;
  const nlohmann::json& depths = j.contains("depths") ? j["depths"] : none;
  const nlohmann::json& kernels = j.contains("kernels") ? j["kernels"] : none;
  SubnetConfig c;
  try {
    for (const auto& [name, v] : widths.items()) {
      const WidthGroup* w = s.group(name);
      if (!w) fail("{}: unknown width group '{}'", source, name);
      check(w->choices, v.get<int64_t>(), "width of '" + name + "'");
      c.widths[name] = v.get<int64_t>();
    }
    for (const auto& [name, v] : depths.items()) {
      const Stage* st = s.stage(name);
      if (!st) fail("{}: unknown stage '{}'", source, name);
      check(st->choices, v.get<int64_t>(), "depth of '" + name + "'");
      c.depths[name] = v.get<int64_t>();
    }
    for (const auto& [name, v] : kernels.items()) {
      const KernelChoice* k = s.kernel(name);
      if (!k) fail("{}: '{}' has no kernel choices", source, name);
      check(k->choices, v.get<int64_t>(), "kernel of '" + name + "'");
      c.kernels[name] = v.get<int64_t>();
    }
    c.resolution = j.value("resolution", int64_t{0});
  } catch (const nlohmann::json::exception& e) {
    fail("{}: every value must be an integer ({})", source, e.what());
  }
  if (c.resolution != 0) {
    std::vector<int64_t> allowed =
        s.resolutions.empty() ? std::vector<int64_t>{s.resolution} : s.resolutions;
    if (s.resolution == 0)
      fail("{}: this model's resolution is fixed ({})", source, s.resolution_fixed_by);
    check(allowed, c.resolution, "resolution");
  }
  return c;
}

SubnetConfig parse_subnet_spec(const std::string& spec, const SearchSpace& s) {
  if (spec == "max") return max_subnet(s);
  if (spec == "min") return min_subnet(s);
  if (spec.rfind("random:", 0) == 0) {
    try {
      size_t used = 0;
      uint64_t seed = std::stoull(spec.substr(7), &used);
      if (used == spec.size() - 7) return random_subnet(s, seed);
    } catch (const std::exception&) {
    }
    fail("--subnet: '{}' needs a whole number after 'random:'", spec);
  }
  return subnet_from_json(read_file(spec), spec, s);
}

}  // namespace autotailor::supernet
