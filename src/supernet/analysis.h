// The channel analysis behind a SearchSpace, kept for the stages that slice weights (internal).
#pragma once

#include <memory>
#include <vector>

#include "autotailor/supernet/space.h"
#include "channels.h"

namespace autotailor::supernet {

struct ChannelAnalysis {
  explicit ChannelAnalysis(const ir::Graph& g) : state(g) {}
  ChannelState state;
  std::vector<int> group_of_space;       // space index -> analysis group index
  std::vector<std::string> group_names;  // analysis group index -> unique group name
};

// Gives every node its own tensor for a constant that several nodes read (exporters store
// identical weights, such as all-zero biases, once), so that slicing one does not tie the
// others' channels together. The data itself stays shared.
ir::Graph unshare_constants(const ir::Graph& g);

// Runs the per-op channel rules over the graph in topological order.
std::unique_ptr<ChannelAnalysis> analyze_channels(const ir::Graph& g);

// Width groups from the analysis (fills group_of_space).
std::vector<WidthGroup> width_groups(ChannelAnalysis& a, const SpaceOptions& o);

}  // namespace autotailor::supernet
