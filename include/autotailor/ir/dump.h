// Human- and machine-readable views of a TailorIR graph: text (one line per node with shapes),
// JSON, and Graphviz DOT. The same dumps serve `inspect` and the per-stage `--dump-ir`.
#pragma once

#include <set>
#include <string>

#include "autotailor/ir/graph.h"

namespace autotailor::ir {

struct GraphStats {
  int64_t nodes = 0, parameters = 0, macs = 0;
  std::map<std::string, std::pair<int64_t, int64_t>> by_type;  // op type -> (count, MACs)
};
GraphStats graph_stats(const Graph& g);

std::string dump_text(const Graph& g);
// An attribute's value as the text dump shows it (ints joined by commas, strings quoted).
std::string attribute_text(const Attribute& a);
std::string dump_json(const Graph& g, int indent = 2);  // {"graph": {...}, "stats": {...}}
// `highlight`: node names drawn filled (the elastic nodes, in later stages).
std::string dump_dot(const Graph& g, const std::set<std::string>& highlight = {});

}  // namespace autotailor::ir
