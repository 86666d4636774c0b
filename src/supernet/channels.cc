#include "channels.h"

#include <fmt/format.h>

namespace autotailor::supernet {

int64_t Layout::channels() const {
  int64_t n = 0;
  for (const Segment& s : segments) n += s.length;
  return n;
}

int ChannelState::root(int s) {
  while (spaces[s].parent != s) {
    spaces[s].parent = spaces[spaces[s].parent].parent;
    s = spaces[s].parent;
  }
  return s;
}

Layout ChannelState::fresh(int64_t size, int axis, const std::string& origin) {
  Space sp;
  sp.size = size;
  sp.parent = static_cast<int>(spaces.size());
  sp.origin = origin;
  spaces.push_back(sp);
  Layout l;
  l.axis = axis;
  l.segments = {{sp.parent, size}};
  return l;
}

void ChannelState::freeze_space(int s, const std::string& why) {
  int r = root(s);
  if (!spaces[r].frozen) {
    spaces[r].frozen = true;
    spaces[r].frozen_by = why;
  }
}

void ChannelState::freeze(const Layout& l, const std::string& why) {
  for (const Segment& seg : l.segments) freeze_space(seg.space, why);
}

// Positional unification: both layouts must consist of the same segment lengths in the same
// order (then segment i of one is segment i of the other); anything else freezes both.
void ChannelState::unify(const Layout& a, const Layout& b, const std::string& why) {
  bool same = a.segments.size() == b.segments.size() && a.inner == b.inner;
  for (size_t i = 0; same && i < a.segments.size(); ++i)
    same = a.segments[i].length == b.segments[i].length;
  if (!same) {
    freeze(a, why + " (channel layouts differ)");
    freeze(b, why + " (channel layouts differ)");
    return;
  }
  for (size_t i = 0; i < a.segments.size(); ++i) {
    int ra = root(a.segments[i].space), rb = root(b.segments[i].space);
    if (ra == rb) continue;
    bool frozen = spaces[ra].frozen || spaces[rb].frozen;
    std::string by = spaces[ra].frozen ? spaces[ra].frozen_by : spaces[rb].frozen_by;
    spaces[rb].parent = ra;
    spaces[ra].frozen = frozen;
    spaces[ra].frozen_by = by;
  }
}

void ChannelContext::set_out(size_t k, Layout l) {
  if (!node.has_output(k)) return;
  const ir::Tensor& t = out_tensor(k);
  if (l.valid()) {
    bool fits =
        l.axis < static_cast<int>(t.shape.size()) && t.shape[l.axis] == l.channels() * l.inner;
    if (!fits) {
      state.freeze(l, why("output shape does not match the channel layout"));
      l = Layout{};
    }
  }
  if (!l.valid() && t.shape.size() >= 2) {
    l = fresh(t.shape[1], 1);
    state.freeze(l, why("channels not followed through this op"));
  }
  state.layouts.at(node.outputs[k]) = std::move(l);
}

void ChannelContext::freeze_all(const std::string& reason) {
  for (size_t k = 0; k < node.inputs.size(); ++k)
    if (has_in(k) && !is_const(k)) state.freeze(in(k), why(reason));
  for (size_t k = 0; k < node.outputs.size(); ++k) set_out(k, Layout{});
}

void ChannelContext::bind(size_t input, int axis, const Layout& l, Binding::Role role) {
  if (!is_const(input) || !l.valid()) return;
  const ir::Tensor& t = in_tensor(input);
  if (axis >= static_cast<int>(t.shape.size()) || t.shape[axis] != l.channels() * l.inner) {
    state.freeze(l, why("a weight's shape does not match its channels"));
    return;
  }
  // A constant shared between nodes must be indexed alike wherever it is bound.
  for (const Binding& b : state.bindings)
    if (b.tensor == node.inputs[input] && b.axis == axis)
      state.unify(b.layout, l, why("weight shared between nodes"));
  state.bindings.push_back({node.inputs[input], axis, l, role, node.name});
}

std::string ChannelContext::why(const std::string& what) const {
  return fmt::format("{} '{}': {}", node.op_type, node.name, what);
}

void freeze_everything(ChannelContext& c) {
  c.freeze_all("no channel rule for this op");
}

}  // namespace autotailor::supernet
