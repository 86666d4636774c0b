// A SuperNet: the original model as the largest member of a weight-sharing family. Holds the
// graph (channels reordered by importance), its search space, and the channel analysis that
// says which weight axes each width group slices.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "autotailor/ir/graph.h"
#include "autotailor/supernet/space.h"

namespace autotailor::supernet {

struct ChannelAnalysis;

// One member of the family. Names refer to SearchSpace entries; what is missing is at its
// maximum. JSON: {"format": "autotailor-subnet", "resolution": R, "widths": {group: C},
// "depths": {stage: D}, "kernels": {conv: K}}.
struct SubnetConfig {
  int64_t resolution = 0;  // 0: the model's own
  std::map<std::string, int64_t> widths, depths, kernels;
  // Spelled out (not `= default`): this header also builds as C++17 for the fuzzer.
  bool operator==(const SubnetConfig& o) const {
    return resolution == o.resolution && widths == o.widths && depths == o.depths &&
           kernels == o.kernels;
  }
};

SubnetConfig max_subnet(const SearchSpace& s);
SubnetConfig min_subnet(const SearchSpace& s);
// The middle choice of every dimension (the upper one of an even count): "mid".
SubnetConfig mid_subnet(const SearchSpace& s);
SubnetConfig random_subnet(const SearchSpace& s, uint64_t seed);
std::string subnet_to_json(const SubnetConfig& c, int indent = 2);
// Parses and checks against the space; errors name `source` and the entry.
SubnetConfig subnet_from_json(const std::string& text, const std::string& source,
                              const SearchSpace& s);
// "max", "min", "mid", "random:SEED" or a JSON file.
SubnetConfig parse_subnet_spec(const std::string& spec, const SearchSpace& s);

// The elastic positions of a space as a flat vector of choice indices (Once-for-All's
// architecture encoding): what search mutates and the compiled predictors read. Order: widths
// of elastic groups, kernels with choices, the resolution, then stage depths (each only when it
// has more than one choice).
struct Position {
  enum class Kind { Width, Kernel, Resolution, Depth };
  Kind kind;
  std::string name;  // group, conv or stage; "resolution"
  std::vector<int64_t> choices;
};
using SubnetCode = std::vector<uint8_t>;

std::vector<Position> positions(const SearchSpace& s);
const char* kind_name(Position::Kind k);  // "width", "kernel", "resolution", "depth"
SubnetCode encode(const std::vector<Position>& p, const SubnetConfig& c);  // throws on a bad value
SubnetConfig decode(const std::vector<Position>& p, const SubnetCode& code);

class Supernet {
 public:
  // Analyses `g` as it is (no reordering).
  Supernet(std::shared_ptr<const ir::Graph> g, const SpaceOptions& options);
  // Reads DIR/supernet.onnx and DIR/space.json.
  static Supernet load(const std::string& dir);
  // Writes DIR/supernet.onnx and DIR/space.json (each atomically).
  void save(const std::string& dir) const;

  // The same family with every elastic group's channels permuted by importance (L1 norm of
  // the weights that consume them), consistently in every tensor, so that the full network
  // computes the same function and narrower widths keep the most important channels.
  Supernet reordered_by_importance() const;

  const ir::Graph& graph() const { return *graph_; }
  std::shared_ptr<const ir::Graph> graph_ptr() const { return graph_; }
  const SearchSpace& space() const { return space_; }
  SearchSpace& space() { return space_; }
  const SpaceOptions& options() const { return options_; }

  // The subnet as its own graph: skipped blocks removed, kernels cropped, input resized, and
  // constants *selecting* from the shared data (Tensor::select) rather than copying it; shapes
  // re-inferred. Throws Error naming the config entry that does not fit.
  std::shared_ptr<ir::Graph> derive(const SubnetConfig& c) const;

  // For each node, the elastic width groups whose channels its inputs or outputs carry: the
  // widths its shapes depend on.
  std::map<std::string, std::vector<std::string>> node_width_groups() const;

 private:
  std::shared_ptr<const ir::Graph> graph_;
  SpaceOptions options_;
  SearchSpace space_;
  std::shared_ptr<ChannelAnalysis> analysis_;
};

// Copies selected constants into their own data, for writing a file.
void materialize(ir::Graph& g);

}  // namespace autotailor::supernet
