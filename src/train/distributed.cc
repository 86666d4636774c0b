// Debian's LibTorch is built with Gloo; its header hides the class unless told so.
#define USE_C10D_GLOO 1

#include "autotailor/train/distributed.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>

#include "autotailor/common/error.h"

namespace autotailor::train {

namespace {

int64_t env_int(const char* name, int64_t def, int64_t lo, int64_t hi) {
  const char* v = std::getenv(name);
  if (!v || !*v) return def;
  char* end = nullptr;
  long long x = std::strtoll(v, &end, 10);
  if (*end || x < lo || x > hi)
    fail("environment: {}='{}' is not a number in [{}, {}]", name, v, lo, hi);
  return x;
}

class GlooCollective : public Collective {
 public:
  GlooCollective(int rank, int world, const std::string& addr, uint16_t port)
      : rank_(rank), world_(world) {
    c10d::TCPStoreOptions so;
    so.port = port;
    so.isServer = rank == 0;
    so.numWorkers = static_cast<size_t>(world);
    so.waitWorkers = true;
    so.timeout = std::chrono::seconds(300);
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(addr, so);
      auto o = c10d::ProcessGroupGloo::Options::create(std::chrono::seconds(600));
      bool local = addr == "127.0.0.1" || addr == "localhost";
      o->devices.push_back(local ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                 : c10d::ProcessGroupGloo::createDefaultDevice());
      pg_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, rank, world, o);
    } catch (const std::exception& e) {
      std::string m = e.what();
      fail("rendezvous at {}:{} (rank {} of {}) failed: {}", addr, port, rank, world,
           m.substr(0, m.find('\n')));
    }
    spdlog::info("rank {} of {} joined the process group at {}:{}", rank, world, addr, port);
  }

  int rank() const override { return rank_; }
  int world() const override { return world_; }

  // One flat allreduce per step: fewer round trips than one per tensor.
  void average(std::vector<at::Tensor>& tensors) override {
    if (tensors.empty()) return;
    std::vector<at::Tensor> flat;
    for (const at::Tensor& t : tensors) flat.push_back(t.reshape({-1}));
    std::vector<at::Tensor> buf{at::cat(flat)};
    pg_->allreduce(buf)->wait();
    buf[0].div_(static_cast<double>(world_));
    int64_t off = 0;
    for (at::Tensor& t : tensors) {
      int64_t n = t.numel();
      t.copy_(buf[0].narrow(0, off, n).view(t.sizes()));
      off += n;
    }
  }

 private:
  int rank_, world_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg_;
};

}  // namespace

std::unique_ptr<Collective> join_from_environment() {
  int world = static_cast<int>(env_int("WORLD_SIZE", 1, 1, 4096));
  if (world == 1) return nullptr;
  int rank = static_cast<int>(env_int("RANK", -1, 0, world - 1));
  if (rank < 0) fail("environment: WORLD_SIZE={} is set but RANK is not", world);
  const char* a = std::getenv("MASTER_ADDR");
  std::string addr = a && *a ? a : "127.0.0.1";
  auto port = static_cast<uint16_t>(env_int("MASTER_PORT", 29500, 1, 65535));
  return std::make_unique<GlooCollective>(rank, world, addr, port);
}

}  // namespace autotailor::train
