// Channel analysis state shared by the per-op channel rules (src/ops/*.cc) and the search-space
// analysis (internal).
//
// Every activation tensor's channel axis is a Layout: an ordered list of segments, each a whole
// channel *space* (the output channels of one producer: a Conv, a Gemm, a graph input), and an
// `inner` factor (elements per channel along the axis, > 1 after Flatten). Spaces that must
// shrink together are unified positionally (union-find); a space touched by something the
// rules cannot reason about is frozen. Constants indexed by channels are recorded as bindings,
// which later drive importance, reordering, slicing and export alike.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "autotailor/ir/graph.h"

namespace autotailor::supernet {

struct Segment {
  int space = -1;
  int64_t length = 0;
  // Spelled out (not `= default`): these sources also build as C++17 for the fuzzer.
  bool operator==(const Segment& o) const { return space == o.space && length == o.length; }
};

struct Layout {
  int axis = -1;  // -1: no channel axis (shape tensors, scalars)
  std::vector<Segment> segments;
  int64_t inner = 1;
  bool valid() const { return axis >= 0 && !segments.empty(); }
  int64_t channels() const;  // sum of segment lengths
};

// A constant input's axis indexed by the channels of a layout.
struct Binding {
  int tensor = -1;  // constant tensor id
  int axis = 0;
  Layout layout;
  enum class Role { Producer, Consumer, PassThrough } role = Role::PassThrough;
  std::string node;  // for messages and the docs
};

struct Space {
  int64_t size = 0;
  int parent = -1;  // union-find
  bool frozen = false;
  std::string origin;  // node (or input) that produces it
  int64_t offset = 0;  // first channel within the origin's output (a cut output has several)
  std::string frozen_by;
};

class ChannelState {
 public:
  explicit ChannelState(const ir::Graph& g) : graph(g), layouts(g.tensors.size()) {}

  const ir::Graph& graph;
  std::vector<Layout> layouts;  // per tensor id
  std::vector<Space> spaces;
  std::vector<Binding> bindings;

  // Cut points per origin, found by earlier passes: `fresh` splits that origin's channels there
  // into separate spaces. Rules that need a boundary inside a space (a Split or Slice through
  // it, a grouped conv's groups, layouts unified with other boundaries) request one; the
  // analysis reruns with the new cuts until no rule asks for more (see analyze_channels).
  std::map<std::string, std::set<int64_t>> cuts;
  std::map<std::string, std::set<int64_t>> requested;

  int root(int s);
  Layout fresh(int64_t size, int axis, const std::string& origin);
  void unify(const Layout& a, const Layout& b, const std::string& why);
  // Requests a boundary at channel `at` of `l` (counted in channels, not `inner` positions),
  // in every space of the group that contains it; nothing when it is a boundary already or the
  // space is frozen.
  void request_cut(const Layout& l, int64_t at);
  // Channels [begin, end) of `l` when both ends fall on segment boundaries; otherwise requests
  // the missing boundaries and returns an invalid layout.
  Layout sub(const Layout& l, int64_t begin, int64_t end);
  // `l`'s positions (channels x inner) in n equal consecutive chunks, each on segment
  // boundaries. False when the positions do not divide into whole channels per chunk, or when
  // boundaries are missing (then requested).
  bool chunks(const Layout& l, int64_t n, std::vector<Layout>& out);
  void freeze(const Layout& l, const std::string& why);
  void freeze_space(int s, const std::string& why);
};

// What a channel rule sees: one node, its input layouts, and the state to update.
struct ChannelContext {
  ChannelState& state;
  const ir::Node& node;

  const ir::Graph& graph() const { return state.graph; }
  int64_t opset() const { return state.graph.opset(); }
  bool has_in(size_t k) const { return node.has_input(k); }
  const ir::Tensor& in_tensor(size_t k) const { return graph().tensor(node.inputs.at(k)); }
  const ir::Tensor& out_tensor(size_t k) const { return graph().tensor(node.outputs.at(k)); }
  bool is_const(size_t k) const { return has_in(k) && in_tensor(k).is_const(); }
  const Layout& in(size_t k) const { return state.layouts.at(node.inputs.at(k)); }
  void set_out(size_t k, Layout l);
  Layout fresh(int64_t size, int axis = 1) { return state.fresh(size, axis, node.name); }
  // The channel rule's verdict when it cannot follow the channels: inputs frozen, outputs get
  // new frozen spaces.
  void freeze_all(const std::string& why);
  void pass_through(size_t from = 0, size_t to = 0) { set_out(to, in(from)); }
  void bind(size_t input, int axis, const Layout& l, Binding::Role role);
  std::string why(const std::string& what) const;
};

// A Slice's effective range along one axis (ONNX clamping applied; end >= begin for step > 0),
// from attributes before opset 10 or constant inputs after. None when the bounds are computed
// at run time or the axis is not sliced.
struct SliceRange {
  int64_t begin = 0, end = 0, step = 1;
};
std::optional<SliceRange> slice_range(const ir::Graph& g, const ir::Node& n, int axis);
// Rewrites a step-1 Slice's bounds on `axis` (new constants, so shared ones stay intact).
void set_slice_range(ir::Graph& g, ir::Node& n, int axis, int64_t begin, int64_t end);

// The default for ops with no channel rule.
void freeze_everything(ChannelContext& c);

}  // namespace autotailor::supernet
