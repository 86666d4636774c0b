#include <fmt/format.h>

#include <iostream>
#include <optional>

#include "autotailor/common/files.h"
#include "autotailor/import/onnx_import.h"
#include "autotailor/ir/dump.h"
#include "autotailor/ops/ops.h"
#include "autotailor/supernet/space.h"
#include "commands.h"
#include "space_flags.h"

#include <nlohmann/json.hpp>
#include <set>

namespace autotailor::cli {

namespace {
struct InspectArgs {
  std::string model, dot;
  bool json = false, nodes = false, space = false;
  SpaceFlags flags;
};

void print_space(const supernet::SearchSpace& s) {
  int frozen = static_cast<int>(s.groups.size()) - s.elastic_groups();
  int elastic_kernels = s.elastic_kernels();
  std::cout << fmt::format(
      "\nsearch space: {} elastic width groups ({} frozen), {} skippable blocks in {} stages, "
      "{} elastic kernels, {} resolutions: 10^{:.2f} subnets\n",
      s.elastic_groups(), frozen, s.blocks.size(), s.stages.size(), elastic_kernels,
      std::max<size_t>(1, s.resolutions.size()), s.log10_size());
  std::cout << "\nwidth groups (elastic)\n";
  for (const auto& w : s.groups) {
    if (!w.elastic()) continue;
    std::cout << fmt::format("  {:<40} {:>5} ch  choices {}{}\n", w.name, w.size,
                             fmt::join(w.choices, ","),
                             w.chunks > 1 ? fmt::format("  (x{} chunks)", w.chunks) : "");
    std::cout << fmt::format("      sliced in: {}\n", fmt::join(w.members, ", "));
  }
  std::cout << "\nwidth groups (frozen)\n";
  for (const auto& w : s.groups)
    if (!w.elastic())
      std::cout << fmt::format("  {:<40} {:>5} ch  {}\n", w.name, w.size, w.frozen_by);
  std::cout << "\nstages (depth = how many of the first skippable blocks are kept)\n";
  for (const auto& st : s.stages) {
    std::vector<std::string> names;
    for (int b : st.blocks) names.push_back(s.blocks[b].name);
    std::cout << fmt::format("  {:<40} choices {}  blocks: {}\n", st.name,
                             fmt::join(st.choices, ","), fmt::join(names, ", "));
  }
  std::cout << "\nkernels\n";
  for (const auto& k : s.kernels)
    std::cout << fmt::format("  {:<40} {}x{}  choices {}\n", k.node, k.size, k.size,
                             fmt::join(k.choices, ","));
  if (s.resolutions.size() > 1)
    std::cout << fmt::format("\nresolution {}  choices {}\n", s.resolution,
                             fmt::join(s.resolutions, ","));
  else
    std::cout << fmt::format("\nresolution fixed: {}\n", s.resolution_fixed_by);
}

std::string human(int64_t v) {
  if (v >= 1'000'000'000) return fmt::format("{:.2f} G", v / 1e9);
  if (v >= 1'000'000) return fmt::format("{:.2f} M", v / 1e6);
  if (v >= 1'000) return fmt::format("{:.1f} k", v / 1e3);
  return std::to_string(v);
}

void print_summary(const ir::Graph& g, bool with_nodes) {
  ir::GraphStats s = ir::graph_stats(g);
  if (with_nodes) std::cout << ir::dump_text(g) << "\n";
  std::cout << fmt::format("model     {}\n", g.source);
  std::cout << fmt::format("producer  {} {}, IR version {}, opset {}\n", g.producer_name,
                           g.producer_version, g.ir_version, g.opset());
  for (int id : g.inputs)
    std::cout << fmt::format("input     {} {} {}{}\n", g.tensor(id).name,
                             ir::dtype_name(g.tensor(id).dtype), ir::shape_str(g.tensor(id).shape),
                             g.symbolic_batch ? " (batch symbolic)" : "");
  for (int id : g.outputs)
    std::cout << fmt::format("output    {} {} {}\n", g.tensor(id).name,
                             ir::dtype_name(g.tensor(id).dtype), ir::shape_str(g.tensor(id).shape));
  std::cout << fmt::format("nodes     {}\nparams    {} ({})\nMACs      {} ({})\n\n", s.nodes,
                           s.parameters, human(s.parameters), s.macs, human(s.macs));
  std::cout << fmt::format("{:<22} {:>6} {:>14} {:>7}\n", "op type", "count", "MACs", "share");
  for (const auto& [type, cm] : s.by_type)
    std::cout << fmt::format("{:<22} {:>6} {:>14} {:>6.1f}%{}\n", type, cm.first, cm.second,
                             s.macs ? 100.0 * cm.second / s.macs : 0.0,
                             ops::is_supported(ir::Node{"", type, "", {}, {}, {}})
                                 ? ""
                                 : "  (not supported by the executor)");
  if (!with_nodes) {
    std::cout << "\nMACs per node (--nodes for the full listing):\n";
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      int64_t m = ops::node_macs(g, g.nodes[i]);
      if (m)
        std::cout << fmt::format("  {:4} {:<20} {:<32} {:>14}\n", i, g.nodes[i].op_type,
                                 g.nodes[i].name, m);
    }
  }
}
}  // namespace

void add_inspect(CLI::App& app) {
  auto a = std::make_shared<InspectArgs>();
  auto* cmd = app.add_subcommand("inspect", "Import a model and show its TailorIR graph");
  cmd->add_option("model", a->model, "ONNX model file")->required();
  cmd->add_flag("--json", a->json, "Print the graph and statistics as JSON to stdout");
  cmd->add_flag("--nodes", a->nodes, "List every node with its input and output shapes");
  cmd->add_option("--dot", a->dot, "Write a Graphviz DOT rendering of the graph to FILE");
  cmd->add_flag("--space", a->space, "Analyse the search space (width groups, blocks, ...)");
  a->flags.add(cmd);
  cmd->callback([a] {
    auto g = import_onnx(a->model);
    std::optional<supernet::SearchSpace> space;
    std::set<std::string> elastic;
    if (a->space) {
      space = supernet::analyze(*g, a->flags.resolved());
      a->flags.narrow(*space);
      for (const auto& w : space->groups)
        if (w.elastic()) elastic.insert(w.members.begin(), w.members.end());
    }
    if (!a->dot.empty()) write_file_atomic(a->dot, ir::dump_dot(*g, elastic));
    if (a->json) {
      auto j = nlohmann::json::parse(ir::dump_json(*g));
      if (space) j["space"] = nlohmann::json::parse(supernet::space_to_json(*space));
      std::cout << j.dump(2) << "\n";
      return;
    }
    print_summary(*g, a->nodes);
    if (space) print_space(*space);
  });
}

}  // namespace autotailor::cli
