// Dataset formats: MNIST-format idx files (optionally gzip-compressed) and ImageFolder
// directories decoded with stb_image.
#include <stb/stb_image.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "autotailor/common/error.h"
#include "autotailor/data/dataset.h"

namespace autotailor::data {

namespace {

namespace fs = std::filesystem;

// The whole file, gunzipped when it is gzip data (zlib's gz* reads plain files as they are).
std::string read_maybe_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail("{}: cannot open", path);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      gzclose(f);
      fail("{}: corrupt or truncated gzip data", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  gzclose(f);
  return out;
}

uint32_t be32(const std::string& b, size_t at) {
  auto u = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(b[at + k])); };
  return (u(0) << 24) | (u(1) << 16) | (u(2) << 8) | u(3);
}

std::string find_idx(const std::string& dir, const std::string& stem) {
  for (const char* ext : {"", ".gz"}) {
    std::string p = (fs::path(dir) / (stem + ext)).string();
    if (fs::exists(p)) return p;
  }
  fail("{}: missing {} (or {}.gz)", dir, stem, stem);
}

class IdxDataset : public Dataset {
 public:
  IdxDataset(const std::string& dir, const std::string& prefix, std::string name)
      : name_(std::move(name)) {
    std::string ip = find_idx(dir, prefix + "-images-idx3-ubyte");
    std::string lp = find_idx(dir, prefix + "-labels-idx1-ubyte");
    std::string im = read_maybe_gz(ip), lb = read_maybe_gz(lp);
    if (im.size() < 16 || be32(im, 0) != 2051) fail("{}: not an idx image file (magic 2051)", ip);
    if (lb.size() < 8 || be32(lb, 0) != 2049) fail("{}: not an idx label file (magic 2049)", lp);
    n_ = be32(im, 4);
    h_ = be32(im, 8);
    w_ = be32(im, 12);
    if (h_ == 0 || w_ == 0) fail("{}: images of size {}x{}", ip, h_, w_);
    // The header's n x h x w can pass 64 bits (three 32-bit fields): checked, not wrapped.
    uint64_t pixels = 0;
    if (__builtin_mul_overflow(uint64_t{n_}, static_cast<uint64_t>(h_), &pixels) ||
        __builtin_mul_overflow(pixels, static_cast<uint64_t>(w_), &pixels))
      fail("{}: the header claims {} images of {}x{}, more bytes than 64 bits count", ip, n_, h_,
           w_);
    if (im.size() - 16 != pixels)
      fail("{}: {} bytes, expected 16 + {} for {} images of {}x{} (truncated?)", ip, im.size(),
           pixels, n_, h_, w_);
    if (be32(lb, 4) != n_) fail("{}: {} labels for {} images in {}", lp, be32(lb, 4), n_, ip);
    if (lb.size() != 8 + static_cast<size_t>(n_)) fail("{}: truncated", lp);
    if (n_ == 0) fail("{}: no images", ip);
    pixels_.assign(im.begin() + 16, im.end());
    labels_.assign(lb.begin() + 8, lb.end());
  }
  size_t size() const override { return n_; }
  int64_t label(size_t i) const override { return static_cast<unsigned char>(labels_[i]); }
  int64_t channels() const override { return 1; }
  Image image(size_t i, int64_t) const override {
    Image img{1, h_, w_, {}};
    size_t n = static_cast<size_t>(h_ * w_);
    const uint8_t* p = reinterpret_cast<const uint8_t*>(pixels_.data()) + i * n;
    img.pixels.assign(p, p + n);
    return img;
  }
  std::string describe() const override {
    return fmt::format("{} ({} images, {}x{}x1)", name_, n_, h_, w_);
  }
  int64_t max_label() const {
    int64_t m = 0;
    for (char c : labels_) m = std::max<int64_t>(m, static_cast<unsigned char>(c));
    return m;
  }

 private:
  std::string name_;
  uint32_t n_ = 0;
  int64_t h_ = 0, w_ = 0;
  std::string pixels_, labels_;
};

bool is_image(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e == ".png" || e == ".jpg" || e == ".jpeg" || e == ".bmp";
}

class FolderDataset : public Dataset {
 public:
  FolderDataset(const std::string& dir, const std::vector<std::string>& classes, bool required,
                std::string name)
      : name_(std::move(name)) {
    for (size_t c = 0; c < classes.size(); ++c) {
      fs::path cd = fs::path(dir) / classes[c];
      if (!fs::is_directory(cd)) {
        if (required) fail("{}: missing class folder", cd.string());
        continue;
      }
      std::vector<std::string> files;
      for (const auto& e : fs::directory_iterator(cd))
        if (e.is_regular_file() && is_image(e.path())) files.push_back(e.path().string());
      if (files.empty() && required)
        fail("{}: no images (.png, .jpg, .jpeg, .bmp) in this class folder", cd.string());
      std::sort(files.begin(), files.end());
      for (auto& f : files) items_.push_back({std::move(f), static_cast<int64_t>(c)});
    }
    if (items_.empty()) fail("{}: no images", dir);
  }
  size_t size() const override { return items_.size(); }
  int64_t label(size_t i) const override { return items_[i].second; }
  int64_t channels() const override { return 0; }
  Image image(size_t i, int64_t channels) const override {
    int w = 0, h = 0, c = 0;
    int want = channels == 1 ? 1 : 3;
    unsigned char* p = stbi_load(items_[i].first.c_str(), &w, &h, &c, want);
    if (!p) fail("{}: cannot decode image ({})", items_[i].first, stbi_failure_reason());
    Image img{want, h, w, {}};
    img.pixels.assign(p, p + static_cast<size_t>(w) * h * want);
    stbi_image_free(p);
    return img;
  }
  std::string describe() const override {
    return fmt::format("{} ({} images)", name_, items_.size());
  }

 private:
  std::string name_;
  std::vector<std::pair<std::string, int64_t>> items_;
};

DataSource open_idx(const std::string& dir, const std::string& spec) {
  if (!fs::is_directory(dir)) fail("--data {}: '{}' is not a directory", spec, dir);
  DataSource d;
  d.spec = spec;
  auto train = std::make_shared<IdxDataset>(dir, "train", spec + " train");
  auto test = std::make_shared<IdxDataset>(dir, "t10k", spec + " test");
  d.num_classes = std::max(train->max_label(), test->max_label()) + 1;
  for (int64_t c = 0; c < d.num_classes; ++c) d.class_names.push_back(std::to_string(c));
  d.train = train;
  d.test = test;
  return d;
}

DataSource open_folder(const std::string& dir, const std::string& spec) {
  fs::path tr = fs::path(dir) / "train", va = fs::path(dir) / "val";
  if (!fs::is_directory(tr))
    fail("--data {}: missing {}/ (ImageFolder layout: train/CLASS/*, val/CLASS/*)", spec,
         tr.string());
  if (!fs::is_directory(va))
    fail("--data {}: missing {}/ (ImageFolder layout: train/CLASS/*, val/CLASS/*)", spec,
         va.string());
  DataSource d;
  d.spec = spec;
  for (const auto& e : fs::directory_iterator(tr))
    if (e.is_directory()) d.class_names.push_back(e.path().filename().string());
  std::sort(d.class_names.begin(), d.class_names.end());
  if (d.class_names.empty()) fail("{}: no class folders", tr.string());
  std::set<std::string> known(d.class_names.begin(), d.class_names.end());
  for (const auto& e : fs::directory_iterator(va))
    if (e.is_directory() && !known.count(e.path().filename().string()))
      fail("{}: class '{}' has no training folder", va.string(), e.path().filename().string());
  d.num_classes = static_cast<int64_t>(d.class_names.size());
  d.train = std::make_shared<FolderDataset>(tr.string(), d.class_names, true, spec + " train");
  d.test = std::make_shared<FolderDataset>(va.string(), d.class_names, false, spec + " val");
  return d;
}

}  // namespace

DataSource open_data(const std::string& spec) {
  if (spec == "fashion-mnist") {
    const char* dir = "/usr/share/datasets/fashion-mnist";
    if (!fs::is_directory(dir))
      fail("--data fashion-mnist: {} is missing (install the Debian package dataset-fashion-mnist)",
           dir);
    return open_idx(dir, spec);
  }
  if (spec.rfind("idx:", 0) == 0) return open_idx(spec.substr(4), spec);
  if (spec.rfind("folder:", 0) == 0) return open_folder(spec.substr(7), spec);
  fail("--data: unknown dataset '{}' (use fashion-mnist, idx:DIR or folder:DIR)", spec);
}

void check_fits(const DataSource& d, const Preprocess& p, int64_t classes) {
  if (d.num_classes > classes)
    fail("--data {}: {} classes, but the model has {} outputs", d.spec, d.num_classes, classes);
  int64_t stored = d.train->channels();
  if (stored == 0 && p.channels != 1 && p.channels != 3)
    fail("--data {}: images decode to 1 or 3 channels; the model takes {}", d.spec, p.channels);
  if (stored > 1 && stored != p.channels)
    fail("--data {}: {}-channel images; the model takes {}", d.spec, stored, p.channels);
  if (p.height < 1 || p.width < 1) fail("the model's input has no spatial size");
  for (const auto* v : {&p.mean, &p.std}) {
    const char* what = v == &p.mean ? "--mean" : "--std";
    if (v->size() != 1 && static_cast<int64_t>(v->size()) != p.channels)
      fail("{}: {} values; give one, or one per channel ({})", what, v->size(), p.channels);
  }
  for (float s : p.std)
    if (!(s > 0)) usage_fail("--std: {} is not positive", s);
}

}  // namespace autotailor::data
