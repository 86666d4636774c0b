// Training through the TailorIR executor with autograd: a plain model (its max subnet only),
// or a SuperNet with the sandwich rule (max, min and random subnets each step, the smaller
// ones distilled from the max subnet's soft outputs). Checkpoints make it resumable.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autotailor/data/dataset.h"
#include "autotailor/ir/graph.h"
#include "autotailor/supernet/supernet.h"
#include "autotailor/train/parameters.h"

namespace autotailor::train {

struct TrainOptions {
  int epochs = 1;
  int64_t batch_size = 64;        // global: split across processes when distributed
  std::string optimizer = "sgd";  // sgd | adamw
  double lr = 0;                  // 0: 0.05 for sgd, 0.001 for adamw (at batch 64, scaled)
  double momentum = 0.9;          // sgd
  double weight_decay = -1;       // <0: 5e-5 for sgd, 0.01 for adamw; weights only
  double warmup_epochs = 0.2;     // linear warm-up, then cosine decay to 0
  double label_smoothing = 0.1;
  int random_subnets = 2;          // SuperNet: random subnets per step besides max and min
  int64_t checkpoint_every = 100;  // steps; and at the end of every epoch
  uint64_t seed = 0;
  int workers = 2;        // data loading threads
  int64_t max_steps = 0;  // >0: stop after this many steps in all (tests, benchmarks)

  double resolved_lr() const;
  double resolved_weight_decay() const;
  // What must match for a checkpoint to resume (everything but max_steps and workers).
  std::string fingerprint() const;
};

// Sums gradients across data-parallel processes; null when training alone.
class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  // In place: each tensor becomes the mean over processes.
  virtual void average(std::vector<at::Tensor>& tensors) = 0;
};

struct TrainData {
  data::DataSource source;
  data::Partition split;  // train / calibration part of the training set
  data::Preprocess pre;
  size_t calibration_images = 2000;  // BatchNorm statistics are measured on this many
};

struct TrainReport {
  int64_t steps = 0, first_step = 0;  // first_step > 0: resumed from a checkpoint
  double seconds = 0, images_per_second = 0, last_loss = 0;
};

// Trains the store's tensors. `family` is the SuperNet (sandwich rule) or null (the graph as
// it is). The checkpoint file is read if it exists (and belongs to this run) and written
// atomically every checkpoint_every steps and at the end of each epoch.
TrainReport fit(std::shared_ptr<const ir::Graph> graph, const supernet::Supernet* family,
                ParameterStore& store, const TrainData& data, const TrainOptions& options,
                const std::string& checkpoint, Collective* collective = nullptr);

// Measures the statistics of every BatchNormalization of `g` on up to `images` images (the
// calibration part of the training set) and returns the graph with them as running mean and
// variance. Measure mode: the BatchNorms pass their input through (used right after
// insert_batchnorm); Train mode: they normalise with the batch statistics (recalibrating a
// subnet, as Once-for-All does).
std::shared_ptr<ir::Graph> recalibrate(std::shared_ptr<const ir::Graph> g, const TrainData& data,
                                       size_t images, bool measure_only, int workers = 2);

// Top-1 accuracy of `g` on the test split (the first `limit` images when limit > 0).
struct Accuracy {
  double top1 = 0;
  size_t images = 0;
  std::vector<uint8_t> correct;  // per image, in the order evaluated: 1 where top-1 is right
};
Accuracy evaluate(std::shared_ptr<const ir::Graph> g, const TrainData& data, int64_t batch_size,
                  int workers = 2, size_t limit = 0);
// The same on chosen images of a dataset (probes on the held-out part of the training set).
Accuracy evaluate_on(std::shared_ptr<const ir::Graph> g, std::shared_ptr<const data::Dataset> d,
                     const std::vector<size_t>& indices, const data::Preprocess& pre,
                     int64_t batch_size, int workers = 2);

// The model's input (channels, height, width) and class count, checked to be an image
// classifier: one float input [N, C, H, W], one output [N, classes].
struct ModelShape {
  int64_t channels = 0, height = 0, width = 0, classes = 0;
};
ModelShape model_shape(const ir::Graph& g);

}  // namespace autotailor::train
