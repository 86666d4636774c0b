#include "channels.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

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
  Layout l;
  l.axis = axis;
  int64_t begin = 0;
  auto add = [&](int64_t end) {
    Space sp;
    sp.size = end - begin;
    sp.parent = static_cast<int>(spaces.size());
    sp.origin = origin;
    sp.offset = begin;
    spaces.push_back(sp);
    l.segments.push_back({sp.parent, sp.size});
    begin = end;
  };
  auto it = cuts.find(origin);
  if (it != cuts.end())
    for (int64_t c : it->second)
      if (c > begin && c < size) add(c);
  add(size);
  return l;
}

void ChannelState::request_cut(const Layout& l, int64_t at) {
  int64_t pos = 0;
  for (const Segment& seg : l.segments) {
    if (at > pos && at < pos + seg.length) {
      int r = root(seg.space);
      if (spaces[r].frozen) return;
      for (size_t s = 0; s < spaces.size(); ++s)
        if (root(static_cast<int>(s)) == r)
          requested[spaces[s].origin].insert(spaces[s].offset + (at - pos));
      return;
    }
    pos += seg.length;
  }
}

Layout ChannelState::sub(const Layout& l, int64_t begin, int64_t end) {
  Layout out;
  int64_t pos = 0;
  bool whole = true;
  for (const Segment& seg : l.segments) {
    int64_t a = pos, b = pos + seg.length;
    pos = b;
    if (b <= begin || a >= end) continue;
    if (a < begin || b > end) whole = false;
    out.segments.push_back(seg);
  }
  if (!whole || out.segments.empty()) {
    request_cut(l, begin);
    request_cut(l, end);
    return Layout{};
  }
  out.axis = l.axis;
  out.inner = l.inner;
  return out;
}

bool ChannelState::chunks(const Layout& l, int64_t n, std::vector<Layout>& out) {
  out.clear();
  const int64_t positions = l.channels() * l.inner;
  if (n < 1 || positions % n != 0 || (positions / n) % l.inner != 0) return false;
  const int64_t per = positions / n / l.inner;  // channels per chunk
  bool ok = true;
  for (int64_t k = 0; k < n; ++k) {
    out.push_back(sub(l, k * per, (k + 1) * per));
    ok = ok && out.back().valid();
  }
  return ok;
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
    // Equal channels cut at different points: request each side's boundaries in the other, so
    // that the next pass lines them up.
    auto any_frozen = [&](const Layout& l) {
      for (const Segment& seg : l.segments)
        if (spaces[root(seg.space)].frozen) return true;
      return false;
    };
    if (a.inner == b.inner && a.channels() == b.channels() && !any_frozen(a) && !any_frozen(b)) {
      int64_t pa = 0, pb = 0;
      for (const Segment& s : a.segments) request_cut(b, pa += s.length);
      for (const Segment& s : b.segments) request_cut(a, pb += s.length);
    }
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

namespace {

// Slice's starts, ends, axes and steps (inputs 1-4 from opset 10, attributes before).
struct SliceArgs {
  std::vector<int64_t> starts, ends, axes, steps;
};

std::optional<SliceArgs> slice_args(const ir::Graph& g, const ir::Node& n) {
  SliceArgs a;
  if (g.opset() < 10) {
    a.starts = n.attr_ints("starts");
    a.ends = n.attr_ints("ends");
    a.axes = n.attr_ints("axes");
  } else {
    auto get = [&](size_t k, std::vector<int64_t>& v) {
      if (!n.has_input(k)) return true;
      const ir::Tensor& t = g.tensor(n.inputs[k]);
      if (!t.is_const()) return false;
      v = t.value->to_int64();
      return true;
    };
    if (!get(1, a.starts) || !get(2, a.ends) || !get(3, a.axes) || !get(4, a.steps))
      return std::nullopt;
  }
  if (a.axes.empty())
    for (size_t i = 0; i < a.starts.size(); ++i) a.axes.push_back(static_cast<int64_t>(i));
  if (a.steps.empty()) a.steps.assign(a.starts.size(), 1);
  if (a.ends.size() != a.starts.size() || a.axes.size() != a.starts.size() ||
      a.steps.size() != a.starts.size())
    return std::nullopt;
  return a;
}

// Index of `axis` in the Slice's axes, or -1.
int64_t slice_entry(const ir::Graph& g, const ir::Node& n, const SliceArgs& a, int axis) {
  const int64_t rank = static_cast<int64_t>(g.tensor(n.inputs[0]).shape.size());
  for (size_t i = 0; i < a.axes.size(); ++i)
    if ((a.axes[i] < 0 ? a.axes[i] + rank : a.axes[i]) == axis) return static_cast<int64_t>(i);
  return -1;
}

// A copy of an integer constant with element i replaced (same dtype, int32 or int64).
int replaced(ir::Graph& g, int tensor, size_t i, int64_t value, const std::string& stem) {
  const ir::ConstData& c = *g.tensor(tensor).value;
  std::vector<int64_t> v = c.to_int64();
  v[i] = value;
  std::shared_ptr<const ir::ConstData> data;
  if (c.dtype == ir::DType::Int32) {
    std::vector<std::byte> b(v.size() * sizeof(int32_t));
    for (size_t k = 0; k < v.size(); ++k) {
      int32_t x = static_cast<int32_t>(v[k]);
      std::memcpy(b.data() + k * sizeof(int32_t), &x, sizeof x);
    }
    data = ir::ConstData::make(ir::DType::Int32, c.shape, std::move(b));
  } else {
    data = ir::ConstData::from_int64(v, c.shape);
  }
  int id = g.unique_tensor(stem);
  ir::Tensor& t = g.tensor(id);
  t.value = data;
  t.dtype = data->dtype;
  t.shape = data->shape;
  return id;
}

}  // namespace

std::optional<SliceRange> slice_range(const ir::Graph& g, const ir::Node& n, int axis) {
  if (n.inputs.empty() || n.inputs[0] < 0) return std::nullopt;
  std::optional<SliceArgs> a = slice_args(g, n);
  if (!a) return std::nullopt;
  int64_t i = slice_entry(g, n, *a, axis);
  const ir::Shape& x = g.tensor(n.inputs[0]).shape;
  if (i < 0 || axis >= static_cast<int>(x.size())) return std::nullopt;
  const int64_t dim = x[axis];
  SliceRange r;
  r.step = a->steps[i];
  if (r.step <= 0) return r;  // callers only follow step 1
  int64_t s = a->starts[i] < 0 ? a->starts[i] + dim : a->starts[i];
  int64_t e = a->ends[i] < 0 ? a->ends[i] + dim : a->ends[i];
  r.begin = std::clamp<int64_t>(s, 0, dim);
  r.end = std::max(r.begin, std::clamp<int64_t>(e, 0, dim));
  return r;
}

void set_slice_range(ir::Graph& g, ir::Node& n, int axis, int64_t begin, int64_t end) {
  std::optional<SliceArgs> a = slice_args(g, n);
  if (!a) return;
  int64_t i = slice_entry(g, n, *a, axis);
  if (i < 0) return;
  if (g.opset() < 10) {
    n.attrs["starts"].ints[static_cast<size_t>(i)] = begin;
    n.attrs["ends"].ints[static_cast<size_t>(i)] = end;
    return;
  }
  n.inputs[1] = replaced(g, n.inputs[1], static_cast<size_t>(i), begin, n.name + "_starts");
  n.inputs[2] = replaced(g, n.inputs[2], static_cast<size_t>(i), end, n.name + "_ends");
}

void freeze_everything(ChannelContext& c) {
  c.freeze_all("no channel rule for this op");
}

}  // namespace autotailor::supernet
