// Target devices. `host` is this machine, measured. Named edge devices carry a descriptor built
// from public specifications; their LUT is an analytic estimate (roofline: compute against
// peak FLOP/s, bytes against memory bandwidth, a per-op overhead and an efficiency per op
// kind) marked `estimated` until measurements imported from the device replace it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "autotailor/latency/latency.h"

namespace autotailor::latency {

struct Device {
  std::string name, description;
  // "measured" (host: LibTorch here), "ort" (host-ort: ONNX Runtime here, through bundles) or
  // "estimated" (a descriptor; measured once results are imported)
  std::string kind;
  // What the runtime uses: the big cluster's cores.
  std::string cpu;  // e.g. "4x Cortex-A78 @ 2.4 GHz + 4x Cortex-A55 @ 2.0 GHz"
  int cores = 1;    // cores used for inference
  double ghz = 1;
  double flops_per_cycle = 8;  // fp32 per core (SIMD lanes x FMA x pipes)
  double memory_gbps = 10;     // sustained DRAM bandwidth
  double op_overhead_us = 5;   // dispatch cost per executed step
  // Share of peak reached per op kind: conv, depthwise, gemm, elementwise, pool, other.
  std::map<std::string, double> efficiency;
  std::vector<std::string> sources;  // where the numbers come from

  double peak_gflops() const { return cores * ghz * flops_per_cycle; }
};

// `host` first, then the named devices, by name.
std::vector<Device> devices();
// A named device or a descriptor file (*.json, the format `devices --json` prints). Throws
// Error listing the known names.
Device find_device(const std::string& name_or_file);

// The estimated latency of one step (an OpConfig's graph) on a device.
LatencyEntry estimate(const Device& d, const ir::Graph& step);

}  // namespace autotailor::latency
