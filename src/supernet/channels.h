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
  std::string frozen_by;
};

class ChannelState {
 public:
  explicit ChannelState(const ir::Graph& g) : graph(g), layouts(g.tensors.size()) {}

  const ir::Graph& graph;
  std::vector<Layout> layouts;  // per tensor id
  std::vector<Space> spaces;
  std::vector<Binding> bindings;

  int root(int s);
  Layout fresh(int64_t size, int axis, const std::string& origin);
  void unify(const Layout& a, const Layout& b, const std::string& why);
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

// The default for ops with no channel rule.
void freeze_everything(ChannelContext& c);

}  // namespace autotailor::supernet
