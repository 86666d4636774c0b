// The data stage: idx (plain and gzip) and ImageFolder sources, their errors, the seeded
// hold-out split, preprocessing against PyTorch's bilinear resize, and the background loader's
// order, resume offset and rank sharding.
#include "autotailor/common/error.h"
#include "autotailor/data/dataset.h"

#include "test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

namespace autotailor {
namespace {

namespace fs = std::filesystem;

void put_be32(std::string& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<char>((v >> s) & 0xff));
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// MNIST-format files: n images of h x w with pixel (i, y, x) = (i * 7 + y * 3 + x) % 256 and
// label i % classes.
void write_idx(const std::string& dir, const std::string& prefix, uint32_t n, uint32_t h,
               uint32_t w, uint32_t classes) {
  std::string im, lb;
  put_be32(im, 2051);
  put_be32(im, n);
  put_be32(im, h);
  put_be32(im, w);
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t y = 0; y < h; ++y)
      for (uint32_t x = 0; x < w; ++x) im.push_back(static_cast<char>((i * 7 + y * 3 + x) % 256));
  put_be32(lb, 2049);
  put_be32(lb, n);
  for (uint32_t i = 0; i < n; ++i) lb.push_back(static_cast<char>(i % classes));
  write_file(dir + "/" + prefix + "-images-idx3-ubyte", im);
  write_file(dir + "/" + prefix + "-labels-idx1-ubyte", lb);
}

// A 24-bit BMP (bottom-up rows padded to 4 bytes) of a solid colour.
void write_bmp(const std::string& path, int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  int row = (3 * w + 3) / 4 * 4;
  std::string f = "BM";
  auto le32 = [&](uint32_t v) {
    for (int s = 0; s < 32; s += 8) f.push_back(static_cast<char>((v >> s) & 0xff));
  };
  auto le16 = [&](uint16_t v) {
    f.push_back(static_cast<char>(v & 0xff));
    f.push_back(static_cast<char>(v >> 8));
  };
  le32(static_cast<uint32_t>(54 + row * h));
  le32(0);
  le32(54);
  le32(40);
  le32(static_cast<uint32_t>(w));
  le32(static_cast<uint32_t>(h));
  le16(1);
  le16(24);
  for (int i = 0; i < 6; ++i) le32(0);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      f.push_back(static_cast<char>(b));
      f.push_back(static_cast<char>(g));
      f.push_back(static_cast<char>(r));
    }
    for (int p = 3 * w; p < row; ++p) f.push_back(0);
  }
  write_file(path, f);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Data, IdxPlainAndGzipReadTheSamePixels) {
  std::string dir = test::temp_dir("data_idx");
  write_idx(dir, "train", 50, 5, 4, 10);
  write_idx(dir, "t10k", 20, 5, 4, 10);
  data::DataSource plain = data::open_data("idx:" + dir);
  ASSERT_EQ(plain.train->size(), 50u);
  ASSERT_EQ(plain.test->size(), 20u);
  EXPECT_EQ(plain.num_classes, 10);
  EXPECT_EQ(plain.train->label(13), 3);
  data::Image im = plain.train->image(13, 1);
  ASSERT_EQ(im.height, 5);
  ASSERT_EQ(im.width, 4);
  EXPECT_EQ(im.pixels[2 * 4 + 1], (13 * 7 + 2 * 3 + 1) % 256);

  ASSERT_EQ(std::system(("gzip " + dir + "/train-images-idx3-ubyte").c_str()), 0);
  data::DataSource gz = data::open_data("idx:" + dir);
  EXPECT_EQ(gz.train->image(13, 1).pixels, im.pixels);

  // A truncated gzip stream and a truncated idx file name the file.
  std::string gzp = dir + "/train-images-idx3-ubyte.gz";
  std::string bytes = test::slurp(gzp);
  write_file(gzp, bytes.substr(0, bytes.size() / 2));
  EXPECT_NE(error_of([&] { data::open_data("idx:" + dir); }).find(gzp), std::string::npos);
  fs::remove(gzp);
  std::string raw;
  put_be32(raw, 2051);
  put_be32(raw, 50);
  put_be32(raw, 5);
  put_be32(raw, 4);
  write_file(dir + "/train-images-idx3-ubyte", raw + std::string(100, 'x'));
  std::string e = error_of([&] { data::open_data("idx:" + dir); });
  EXPECT_NE(e.find("train-images-idx3-ubyte"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  // n x h x w = 2^22 x 2^21 x 2^21 = 2^64 wraps to 0 pixels: a bare header matched it.
  raw.clear();
  put_be32(raw, 2051);
  put_be32(raw, 1u << 22);
  put_be32(raw, 1u << 21);
  put_be32(raw, 1u << 21);
  write_file(dir + "/train-images-idx3-ubyte", raw);
  e = error_of([&] { data::open_data("idx:" + dir); });
  EXPECT_NE(e.find("the header claims 4194304 images of 2097152x2097152"), std::string::npos) << e;
  fs::remove(dir + "/train-images-idx3-ubyte");
  e = error_of([&] { data::open_data("idx:" + dir); });
  EXPECT_NE(e.find("missing train-images-idx3-ubyte"), std::string::npos) << e;
  e = error_of([&] { data::open_data("imagenet"); });
  EXPECT_NE(e.find("unknown dataset 'imagenet'"), std::string::npos) << e;
  fs::remove_all(dir);
}

TEST(Data, FolderLayoutDecodesAndNamesItsErrors) {
  std::string dir = test::temp_dir("data_folder");
  for (const char* split : {"train", "val"})
    for (const char* cls : {"cat", "dog"}) fs::create_directories(dir + "/" + split + "/" + cls);
  write_bmp(dir + "/train/cat/a.bmp", 6, 3, 200, 100, 50);
  write_bmp(dir + "/train/cat/b.bmp", 5, 5, 0, 0, 0);
  write_bmp(dir + "/train/dog/c.bmp", 4, 4, 255, 255, 255);
  write_bmp(dir + "/val/dog/d.bmp", 4, 4, 255, 255, 255);
  data::DataSource d = data::open_data("folder:" + dir);
  EXPECT_EQ(d.num_classes, 2);
  EXPECT_EQ(d.class_names, (std::vector<std::string>{"cat", "dog"}));
  ASSERT_EQ(d.train->size(), 3u);
  EXPECT_EQ(d.test->size(), 1u);
  EXPECT_EQ(d.train->label(0), 0);
  EXPECT_EQ(d.train->label(2), 1);
  data::Image rgb = d.train->image(0, 3);
  ASSERT_EQ(rgb.channels, 3);
  EXPECT_EQ(rgb.width, 6);
  EXPECT_EQ(rgb.height, 3);
  EXPECT_EQ(rgb.pixels[0], 200);
  EXPECT_EQ(rgb.pixels[1], 100);
  EXPECT_EQ(rgb.pixels[2], 50);
  data::Image grey = d.train->image(0, 1);
  ASSERT_EQ(grey.channels, 1);
  EXPECT_NEAR(grey.pixels[0], (200 * 77 + 100 * 150 + 50 * 29) >> 8, 2);

  // Does not fit: more classes than the model's outputs; a 4-channel model.
  data::Preprocess p{3, 8, 8, {0.5f}, {0.25f}};
  EXPECT_NO_THROW(data::check_fits(d, p, 2));
  std::string e = error_of([&] { data::check_fits(d, p, 1); });
  EXPECT_NE(e.find("2 classes, but the model has 1 outputs"), std::string::npos) << e;
  p.channels = 4;
  e = error_of([&] { data::check_fits(d, p, 2); });
  EXPECT_NE(e.find("the model takes 4"), std::string::npos) << e;
  p.channels = 3;
  p.mean = {0.1f, 0.2f};
  e = error_of([&] { data::check_fits(d, p, 2); });
  EXPECT_NE(e.find("2 values"), std::string::npos) << e;

  // A corrupt image fails in the loader's worker, named, on the consumer's thread.
  write_file(dir + "/train/dog/corrupt.png", "not a png at all");
  d = data::open_data("folder:" + dir);
  p.mean = {0.5f};
  data::Loader l(d.train, {0, 1, 2, 3}, p, {});
  e = error_of([&] {
    while (l.next()) {
    }
  });
  EXPECT_NE(e.find("corrupt.png: cannot decode image"), std::string::npos) << e;

  // An empty class folder, a missing val/, a val class without training folder.
  fs::create_directories(dir + "/train/emu");
  e = error_of([&] { data::open_data("folder:" + dir); });
  EXPECT_NE(e.find("emu: no images"), std::string::npos) << e;
  fs::remove_all(dir + "/train/emu");
  fs::create_directories(dir + "/val/emu");
  e = error_of([&] { data::open_data("folder:" + dir); });
  EXPECT_NE(e.find("class 'emu' has no training folder"), std::string::npos) << e;
  fs::remove_all(dir + "/val");
  e = error_of([&] { data::open_data("folder:" + dir); });
  EXPECT_NE(e.find("missing " + dir + "/val/"), std::string::npos) << e;
  fs::remove_all(dir);
}

TEST(Data, HoldoutSplitIsSeededDisjointAndComplete) {
  std::string dir = test::temp_dir("data_split");
  write_idx(dir, "train", 1000, 2, 2, 10);
  write_idx(dir, "t10k", 10, 2, 2, 10);
  auto d = data::open_data("idx:" + dir);
  auto a = data::holdout_split(*d.train, 100, 7), b = data::holdout_split(*d.train, 100, 7);
  auto c = data::holdout_split(*d.train, 100, 8);
  EXPECT_EQ(a.calibration, b.calibration);
  EXPECT_NE(a.calibration, c.calibration);
  ASSERT_EQ(a.calibration.size(), 100u);
  ASSERT_EQ(a.train.size(), 900u);
  std::set<size_t> all(a.train.begin(), a.train.end());
  all.insert(a.calibration.begin(), a.calibration.end());
  EXPECT_EQ(all.size(), 1000u);
  EXPECT_TRUE(std::is_sorted(a.calibration.begin(), a.calibration.end()));
  // Fixed values: the permutation is the same on every machine and standard library.
  auto p = data::permutation(10, 1);
  EXPECT_EQ(p, data::permutation(10, 1));
  std::vector<size_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(sorted[i], i);
  EXPECT_NE(error_of([&] { data::holdout_split(*d.train, 1000, 0); }).find("--holdout 1000"),
            std::string::npos);
  fs::remove_all(dir);
}

// PyTorch is the reference: F.interpolate(mode="bilinear", align_corners=False) is
// at::upsample_bilinear2d.
TEST(Data, PreprocessMatchesPyTorchBilinear) {
  data::Image img{1, 28, 28, {}};
  for (int i = 0; i < 28 * 28; ++i) img.pixels.push_back(static_cast<uint8_t>((i * 37) % 251));
  at::Tensor src = at::from_blob(img.pixels.data(), {1, 1, 28, 28}, at::kByte).to(at::kFloat) / 255;
  for (auto [H, W] : {std::pair<int64_t, int64_t>{32, 32}, {20, 17}, {28, 28}, {64, 40}}) {
    data::Preprocess p{3, H, W, {0.5f, 0.4f, 0.3f}, {0.2f}};
    at::Tensor ours = at::empty({3, H, W});
    data::preprocess(img, p, ours.data_ptr<float>());
    at::Tensor ref = at::upsample_bilinear2d(src, {H, W}, false)[0].expand({3, H, W});
    ref = (ref - at::tensor({0.5f, 0.4f, 0.3f}).view({3, 1, 1})) / 0.2f;
    EXPECT_LT((ours - ref).abs().max().item<float>(), 1e-4) << H << "x" << W;
  }
}

TEST(Data, LoaderOrderResumeAndRankSharding) {
  std::string dir = test::temp_dir("data_loader");
  write_idx(dir, "train", 103, 4, 4, 10);
  write_idx(dir, "t10k", 10, 4, 4, 10);
  auto d = data::open_data("idx:" + dir);
  std::vector<size_t> idx(103);
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  data::Preprocess p{1, 4, 4, {0.f}, {1.f}};
  auto epoch = [&](data::LoaderOptions o) {
    std::vector<data::Batch> out;
    data::Loader l(d.train, idx, p, o);
    while (auto b = l.next()) out.push_back(*b);
    return out;
  };
  data::LoaderOptions o;
  o.batch_size = 10;
  o.shuffle = true;
  o.seed = 5;
  o.threads = 3;
  auto full = epoch(o);
  ASSERT_EQ(full.size(), 11u);  // the last batch holds 3
  EXPECT_EQ(full.back().labels.size(0), 3);
  std::multiset<int64_t> labels;
  for (const auto& b : full)
    for (int64_t i = 0; i < b.labels.size(0); ++i) labels.insert(b.labels[i].item<int64_t>());
  EXPECT_EQ(labels.size(), 103u);
  EXPECT_EQ(labels.count(2), 11u);  // labels 0..2 occur 11 times, 3..9 ten times
  EXPECT_EQ(labels.count(3), 10u);

  o.first_batch = 7;  // resume
  auto tail = epoch(o);
  ASSERT_EQ(tail.size(), 4u);
  for (size_t k = 0; k < tail.size(); ++k) {
    EXPECT_EQ(tail[k].index, 7 + k);
    EXPECT_TRUE(tail[k].images.equal(full[7 + k].images));
  }

  o.first_batch = 0;
  o.world = 2;
  o.rank = 0;
  auto r0 = epoch(o);
  o.rank = 1;
  auto r1 = epoch(o);
  ASSERT_EQ(r0.size(), full.size());
  for (size_t k = 0; k < full.size(); ++k) {
    EXPECT_TRUE(at::cat({r0[k].images, r1[k].images}).equal(full[k].images)) << k;
    EXPECT_TRUE(at::cat({r0[k].labels, r1[k].labels}).equal(full[k].labels)) << k;
  }
  o.drop_last = true;
  o.world = 1;
  o.rank = 0;
  EXPECT_EQ(epoch(o).size(), 10u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace autotailor
