// Deterministic splits and the background batch loader.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "autotailor/common/error.h"
#include "autotailor/data/dataset.h"

namespace autotailor::data {

namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Uniform in [0, n) without modulo bias (rejection of the top partial range).
uint64_t below(uint64_t& state, uint64_t n) {
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  for (;;) {
    uint64_t r = splitmix64(state);
    if (r < limit) return r % n;
  }
}

}  // namespace

std::vector<size_t> permutation(size_t n, uint64_t seed) {
  std::vector<size_t> p(n);
  for (size_t i = 0; i < n; ++i) p[i] = i;
  uint64_t state = seed;
  for (size_t i = n; i > 1; --i) std::swap(p[i - 1], p[below(state, i)]);
  return p;
}

Partition holdout_split(const Dataset& train, size_t holdout, uint64_t seed) {
  size_t n = train.size();
  if (holdout >= n) fail("--holdout {}: the training set has only {} images", holdout, n);
  std::vector<size_t> p = permutation(n, seed ^ 0x686f6c646f7574ull);  // "holdout"
  Partition r;
  r.calibration.assign(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(holdout));
  r.train.assign(p.begin() + static_cast<std::ptrdiff_t>(holdout), p.end());
  std::sort(r.calibration.begin(), r.calibration.end());
  std::sort(r.train.begin(), r.train.end());
  return r;
}

void preprocess(const Image& img, const Preprocess& p, float* out) {
  const int64_t H = p.height, W = p.width, C = p.channels;
  const int64_t h = img.height, w = img.width, c = img.channels;
  // PyTorch's bilinear with align_corners=False: source = (dst + 0.5) * scale - 0.5, clamped
  // below at 0; the upper neighbour clamped to the last row/column.
  const double sy = static_cast<double>(h) / static_cast<double>(H);
  const double sx = static_cast<double>(w) / static_cast<double>(W);
  std::vector<int64_t> x0(W), x1(W);
  std::vector<float> fx(W);
  for (int64_t x = 0; x < W; ++x) {
    double src = std::max(0.0, (static_cast<double>(x) + 0.5) * sx - 0.5);
    x0[x] = std::min<int64_t>(static_cast<int64_t>(src), w - 1);
    x1[x] = std::min<int64_t>(x0[x] + 1, w - 1);
    fx[x] = static_cast<float>(src - static_cast<double>(x0[x]));
  }
  for (int64_t oc = 0; oc < C; ++oc) {
    int64_t ic = c == 1 ? 0 : std::min(oc, c - 1);
    float mean = p.mean.size() == 1 ? p.mean[0] : p.mean[oc];
    float inv = 1.0f / (p.std.size() == 1 ? p.std[0] : p.std[oc]);
    for (int64_t y = 0; y < H; ++y) {
      double src = std::max(0.0, (static_cast<double>(y) + 0.5) * sy - 0.5);
      int64_t y0 = std::min<int64_t>(static_cast<int64_t>(src), h - 1);
      int64_t y1 = std::min<int64_t>(y0 + 1, h - 1);
      float fy = static_cast<float>(src - static_cast<double>(y0));
      const uint8_t* r0 = img.pixels.data() + (y0 * w) * c + ic;
      const uint8_t* r1 = img.pixels.data() + (y1 * w) * c + ic;
      float* o = out + (oc * H + y) * W;
      for (int64_t x = 0; x < W; ++x) {
        float a = r0[x0[x] * c] + (r0[x1[x] * c] - static_cast<float>(r0[x0[x] * c])) * fx[x];
        float b = r1[x0[x] * c] + (r1[x1[x] * c] - static_cast<float>(r1[x0[x] * c])) * fx[x];
        float v = (a + (b - a) * fy) / 255.0f;
        o[x] = (v - mean) * inv;
      }
    }
  }
}

struct Loader::State {
  std::shared_ptr<const Dataset> data;
  std::vector<size_t> order;
  Preprocess pre;
  LoaderOptions o;
  size_t batches = 0;
  std::mutex m;
  std::condition_variable cv;
  std::map<size_t, Batch> ready;
  size_t next_claim = 0, next_out = 0;
  std::exception_ptr error;
  bool stop = false;
  std::vector<std::thread> workers;

  // This rank's rows of global batch k: [begin, end) into `order`.
  std::pair<size_t, size_t> rows(size_t k) const {
    size_t b = static_cast<size_t>(o.batch_size);
    size_t start = k * b, end = std::min(order.size(), start + b);
    size_t n = end - start, world = static_cast<size_t>(o.world), r = static_cast<size_t>(o.rank);
    // Equal shares; the first n % world ranks take one more.
    size_t base = n / world, extra = n % world;
    size_t lo = start + r * base + std::min(r, extra);
    return {lo, lo + base + (r < extra ? 1 : 0)};
  }

  Batch make(size_t k) const {
    auto [lo, hi] = rows(k);
    int64_t n = static_cast<int64_t>(hi - lo);
    Batch b;
    b.index = k;
    b.images = at::empty({n, pre.channels, pre.height, pre.width}, at::kFloat);
    b.labels = at::empty({n}, at::kLong);
    float* dst = b.images.data_ptr<float>();
    int64_t* lab = b.labels.data_ptr<int64_t>();
    size_t per = static_cast<size_t>(pre.channels * pre.height * pre.width);
    for (size_t i = lo; i < hi; ++i) {
      preprocess(data->image(order[i], pre.channels), pre, dst + (i - lo) * per);
      lab[i - lo] = data->label(order[i]);
    }
    return b;
  }

  void work() {
    const size_t ahead = 4 + workers.size();
    for (;;) {
      size_t k;
      {
        std::unique_lock<std::mutex> lock(m);
        cv.wait(lock,
                [&] { return stop || (next_claim < batches && next_claim < next_out + ahead); });
        if (stop || next_claim >= batches) return;
        k = next_claim++;
      }
      try {
        Batch b = make(k);
        std::lock_guard<std::mutex> lock(m);
        ready.emplace(k, std::move(b));
      } catch (...) {
        std::lock_guard<std::mutex> lock(m);
        if (!error) error = std::current_exception();
      }
      cv.notify_all();
    }
  }
};

Loader::Loader(std::shared_ptr<const Dataset> d, std::vector<size_t> indices, Preprocess p,
               LoaderOptions o)
    : s_(std::make_unique<State>()) {
  if (o.batch_size < 1) fail("batch size must be positive");
  if (o.world < 1 || o.rank < 0 || o.rank >= o.world)
    fail("rank {} of {} processes", o.rank, o.world);
  s_->data = std::move(d);
  s_->pre = std::move(p);
  s_->o = o;
  if (o.shuffle) {
    std::vector<size_t> perm = permutation(indices.size(), o.seed);
    s_->order.resize(indices.size());
    for (size_t i = 0; i < perm.size(); ++i) s_->order[i] = indices[perm[i]];
  } else {
    s_->order = std::move(indices);
  }
  size_t b = static_cast<size_t>(o.batch_size);
  s_->batches = o.drop_last ? s_->order.size() / b : (s_->order.size() + b - 1) / b;
  s_->next_claim = s_->next_out = std::min(o.first_batch, s_->batches);
  int threads = std::max(1, o.threads);
  for (int i = 0; i < threads; ++i) s_->workers.emplace_back([st = s_.get()] { st->work(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(s_->m);
    s_->stop = true;
  }
  s_->cv.notify_all();
  for (auto& t : s_->workers) t.join();
}

size_t Loader::batches() const {
  return s_->batches;
}

std::optional<Batch> Loader::next() {
  std::unique_lock<std::mutex> lock(s_->m);
  if (s_->next_out >= s_->batches) return std::nullopt;
  s_->cv.wait(lock, [&] { return s_->error || s_->ready.count(s_->next_out); });
  if (s_->error) std::rethrow_exception(s_->error);
  auto it = s_->ready.find(s_->next_out);
  Batch b = std::move(it->second);
  s_->ready.erase(it);
  ++s_->next_out;
  lock.unlock();
  s_->cv.notify_all();
  return b;
}

}  // namespace autotailor::data
