// Labelled image data for training and evaluation: Fashion-MNIST, MNIST-format (idx) files and
// ImageFolder directories; a deterministic hold-out split; a loader that prepares batches in
// background threads. See docs/data.md.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace autotailor::data {

struct Image {
  int64_t channels = 0, height = 0, width = 0;
  std::vector<uint8_t> pixels;  // HWC
};

// One split (train or test) of a labelled image set; reads are thread-safe.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual size_t size() const = 0;
  virtual int64_t label(size_t i) const = 0;
  // Image i; formats that can convert (folder images) return `channels` (1 or 3) channels.
  virtual Image image(size_t i, int64_t channels) const = 0;
  virtual int64_t channels() const = 0;  // stored channels (0: varies, converted on read)
  virtual std::string describe() const = 0;
};

struct DataSource {
  std::string spec;
  std::shared_ptr<const Dataset> train, test;
  int64_t num_classes = 0;
  std::vector<std::string> class_names;
};

// "fashion-mnist" (idx:/usr/share/datasets/fashion-mnist), "idx:DIR" or "folder:DIR". Errors
// name the spec or the file at fault.
DataSource open_data(const std::string& spec);

struct Preprocess {
  int64_t channels = 1, height = 0, width = 0;
  std::vector<float> mean{0.f}, std{1.f};  // one value, or one per channel
};

// Throws a one-line Error when the data does not fit a model with `classes` outputs and input
// `p`: more classes than outputs, channels that cannot be converted, bad mean/std.
void check_fits(const DataSource& d, const Preprocess& p, int64_t classes);

// A deterministic permutation of 0..n-1 (splitmix64 and Fisher-Yates with explicit
// arithmetic: the same on every machine and standard library).
std::vector<size_t> permutation(size_t n, uint64_t seed);

// The training set's indices split into a training part and `holdout` calibration images,
// chosen by a seeded permutation; both parts sorted.
struct Partition {
  std::vector<size_t> train, calibration;
};
Partition holdout_split(const Dataset& train, size_t holdout, uint64_t seed);

struct Batch {
  size_t index = 0;
  at::Tensor images;  // float32 [B, C, H, W]
  at::Tensor labels;  // int64 [B]
};

struct LoaderOptions {
  int64_t batch_size = 64;  // global batch: split across ranks
  bool shuffle = false;
  uint64_t seed = 0;  // order when shuffling: permutation(indices.size(), seed)
  bool drop_last = false;
  size_t first_batch = 0;  // resume: start at this batch of the epoch
  int threads = 2;
  int rank = 0, world = 1;  // rank r takes [r*B/W, (r+1)*B/W) of every global batch
};

// The batches of one epoch in order, prepared by background threads a few batches ahead.
class Loader {
 public:
  Loader(std::shared_ptr<const Dataset> d, std::vector<size_t> indices, Preprocess p,
         LoaderOptions o);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;
  size_t batches() const;
  // nullopt at the end of the epoch; rethrows a worker's error (a corrupt image, named).
  std::optional<Batch> next();

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// Resizes (bilinear, half-pixel centres as PyTorch's interpolate with align_corners=False and
// no antialiasing), replicates one channel to `p.channels`, normalises; writes CHW floats.
void preprocess(const Image& img, const Preprocess& p, float* out);

}  // namespace autotailor::data
