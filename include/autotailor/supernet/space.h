// The search space of a SuperNet, derived from the graph with no hand-written configuration:
// width groups (channels that shrink together), skippable residual blocks grouped into stages,
// kernel choices for large convolutions, and input resolutions. See docs/supernet.md.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "autotailor/ir/graph.h"

namespace autotailor::supernet {

struct SpaceOptions {
  std::vector<double> width_ratios = {0.25, 0.5, 0.75, 1.0};
  int64_t width_multiple = 8;  // widths are rounded to a multiple of this (never below 1)
  int resolutions = 4;         // how many input sizes between min_resolution_ratio and 1
  double min_resolution_ratio = 0.5;
  int64_t resolution_multiple = 4;
  bool elastic_width = true, elastic_depth = true, elastic_kernel = true, elastic_resolution = true;
  std::vector<std::string> freeze;  // group, stage or conv names to keep at their maximum
};

struct WidthGroup {
  std::string name;  // the node that produces its first channel space
  int64_t size = 0;  // channels at full width (of one chunk, see `chunks`)
  // Spaces of the group that sit side by side in one tensor: the groups of a grouped conv or a
  // channel shuffle, each keeping the same `width` channels (the tensor has chunks x width).
  int64_t chunks = 1;
  std::vector<int64_t> choices;
  std::vector<std::string> producers;  // nodes producing the group's channel spaces
  std::vector<std::string> members;    // every node whose weights are sliced by the group
  std::string frozen_by;               // why the group is fixed, when it is
  bool elastic() const { return choices.size() > 1; }
};

struct SkippableBlock {
  std::string name;                // the residual Add
  std::string input;               // tensor entering the block (the identity shortcut)
  std::vector<std::string> nodes;  // the body, in topological order, then the Add
};

struct Stage {
  std::string name;              // the first block's name
  std::vector<int> blocks;       // indices into SearchSpace::blocks, in order
  std::vector<int64_t> choices;  // how many of the stage's first blocks are kept
};

struct KernelChoice {
  std::string node;  // the Conv
  int64_t size = 0;  // full kernel size (square)
  std::vector<int64_t> choices;
};

struct SearchSpace {
  std::vector<WidthGroup> groups;  // elastic ones first, then frozen ones
  std::vector<SkippableBlock> blocks;
  std::vector<Stage> stages;
  std::vector<KernelChoice> kernels;
  int64_t resolution = 0;  // full input size (square inputs only; 0 when not elastic)
  std::vector<int64_t> resolutions;
  std::string resolution_fixed_by;  // why resolution is not elastic, when it is not

  double log10_size() const;  // log10 of the number of distinct configurations
  int elastic_groups() const;
  int elastic_kernels() const;  // kernels with more than one choice
  const WidthGroup* group(const std::string& name) const;
  const Stage* stage(const std::string& name) const;
  const KernelChoice* kernel(const std::string& node) const;
};

SearchSpace analyze(const ir::Graph& g, const SpaceOptions& options = {});

// space.json: what `supernet` writes next to supernet.onnx, and what `inspect --space --json`
// prints under "space".
std::string space_to_json(const SearchSpace& s, int indent = 2);
// Reads choices back from space.json onto a freshly analysed space (the analysis is
// deterministic; the file may narrow choices). Errors name the file and entry.
void apply_space_json(SearchSpace& s, const std::string& json_text, const std::string& source);

}  // namespace autotailor::supernet
