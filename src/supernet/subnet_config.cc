#include <fmt/format.h>
#include <cmath>

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

std::vector<Position> positions(const SearchSpace& s) {
  std::vector<Position> p;
  for (const WidthGroup& w : s.groups)
    if (w.elastic()) p.push_back({Position::Kind::Width, w.name, w.choices});
  for (const KernelChoice& k : s.kernels)
    if (k.choices.size() > 1) p.push_back({Position::Kind::Kernel, k.node, k.choices});
  if (s.resolutions.size() > 1)
    p.push_back({Position::Kind::Resolution, "resolution", s.resolutions});
  for (const Stage& st : s.stages)
    if (st.choices.size() > 1) p.push_back({Position::Kind::Depth, st.name, st.choices});
  for (const Position& x : p)
    if (x.choices.size() > 255)
      fail("{} '{}' has more than 255 choices", kind_name(x.kind), x.name);
  return p;
}

const char* kind_name(Position::Kind k) {
  switch (k) {
    case Position::Kind::Width:
      return "width";
    case Position::Kind::Kernel:
      return "kernel";
    case Position::Kind::Resolution:
      return "resolution";
    case Position::Kind::Depth:
      return "depth";
  }
  return "?";
}

SubnetCode encode(const std::vector<Position>& p, const SubnetConfig& c) {
  SubnetCode code(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    const Position& x = p[i];
    int64_t v = x.choices.back();
    auto from = [&](const std::map<std::string, int64_t>& m) {
      auto it = m.find(x.name);
      if (it != m.end()) v = it->second;
    };
    switch (x.kind) {
      case Position::Kind::Width:
        from(c.widths);
        break;
      case Position::Kind::Kernel:
        from(c.kernels);
        break;
      case Position::Kind::Depth:
        from(c.depths);
        break;
      case Position::Kind::Resolution:
        if (c.resolution) v = c.resolution;
        break;
    }
    auto it = std::find(x.choices.begin(), x.choices.end(), v);
    if (it == x.choices.end())
      fail("subnet: {} '{}' = {} is not one of its choices", kind_name(x.kind), x.name, v);
    code[i] = static_cast<uint8_t>(it - x.choices.begin());
  }
  return code;
}

SubnetConfig decode(const std::vector<Position>& p, const SubnetCode& code) {
  SubnetConfig c;
  for (size_t i = 0; i < p.size(); ++i) {
    int64_t v = p[i].choices.at(code.at(i));
    switch (p[i].kind) {
      case Position::Kind::Width:
        c.widths[p[i].name] = v;
        break;
      case Position::Kind::Kernel:
        c.kernels[p[i].name] = v;
        break;
      case Position::Kind::Depth:
        c.depths[p[i].name] = v;
        break;
      case Position::Kind::Resolution:
        c.resolution = v;
        break;
    }
  }
  return c;
}

SubnetConfig max_subnet(const SearchSpace& s) {
  return pick_each(s, [](const std::vector<int64_t>& v) { return v.back(); });
}

SubnetConfig min_subnet(const SearchSpace& s) {
  return pick_each(s, [](const std::vector<int64_t>& v) { return v.front(); });
}

SubnetConfig mid_subnet(const SearchSpace& s) {
  return pick_each(s, [](const std::vector<int64_t>& v) { return v[v.size() / 2]; });
}

SubnetConfig random_subnet(const SearchSpace& s, uint64_t seed) {
  // mt19937_64's output is fixed by the standard; std::uniform_int_distribution's is not, so the
  // index is reduced by hand: the same subnet for a seed with every standard library.
  std::mt19937_64 rng(seed);
  return pick_each(s, [&](const std::vector<int64_t>& v) { return v[rng() % v.size()]; });
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
  // An integer as JSON writes it, or a float with an integral value: 8.9 or 1e300 is an error,
  // not 8 or INT64_MIN.
  auto integer = [&](const nlohmann::json& v, const std::string& what) -> int64_t {
    if (v.is_number_unsigned() && v.get<uint64_t>() <= uint64_t{INT64_MAX}) return v.get<int64_t>();
    if (v.is_number_integer() && !v.is_number_unsigned()) return v.get<int64_t>();
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::abs(d) < 9e15)
        return static_cast<int64_t>(d);
    }
    fail("{}: {} must be an integer (got {})", source, what, v.dump());
  };
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
      c.widths[name] = integer(v, "width of '" + name + "'");
      check(w->choices, c.widths[name], "width of '" + name + "'");
    }
    for (const auto& [name, v] : depths.items()) {
      const Stage* st = s.stage(name);
      if (!st) fail("{}: unknown stage '{}'", source, name);
      c.depths[name] = integer(v, "depth of '" + name + "'");
      check(st->choices, c.depths[name], "depth of '" + name + "'");
    }
    for (const auto& [name, v] : kernels.items()) {
      const KernelChoice* k = s.kernel(name);
      if (!k) fail("{}: '{}' has no kernel choices", source, name);
      c.kernels[name] = integer(v, "kernel of '" + name + "'");
      check(k->choices, c.kernels[name], "kernel of '" + name + "'");
    }
    c.resolution = j.contains("resolution") ? integer(j["resolution"], "resolution") : 0;
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
  if (spec == "mid") return mid_subnet(s);
  if (spec.rfind("random:", 0) == 0) {
    try {
      size_t used = 0;
      uint64_t seed = std::stoull(spec.substr(7), &used);
      if (used == spec.size() - 7) return random_subnet(s, seed);
    } catch (const std::exception&) {
    }
    usage_fail("--subnet: '{}' needs a whole number after 'random:'", spec);
  }
  return subnet_from_json(read_file(spec), spec, s);
}

}  // namespace autotailor::supernet
