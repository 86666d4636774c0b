#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <filesystem>

#include "autotailor/common/error.h"
#include "autotailor/common/files.h"
#include "autotailor/exec/executor.h"
#include "autotailor/export/export.h"
#include "autotailor/import/onnx_import.h"
#include "autotailor/import/tensor_file.h"
#include "autotailor/supernet/supernet.h"
#include "commands.h"
#include "space_flags.h"

namespace autotailor::cli {

namespace fs = std::filesystem;

namespace {

// Invariant 1 of the design, checked on every `supernet`: the reordered max subnet computes
// what the original model computes, on a seeded random input.
void check_max_subnet(const ir::Graph& original, const supernet::Supernet& s) {
  c10::InferenceMode guard;
  at::manual_seed(0);
  const ir::Tensor& in = original.tensor(original.inputs[0]);
  std::vector<int64_t> shape = in.shape;
  at::Tensor x = at::randn(shape);
  exec::Executor a(std::make_shared<ir::Graph>(original));
  exec::Executor b(s.derive(supernet::max_subnet(s.space())));
  at::Tensor ya = a.run({x})[0], yb = b.run({x})[0];
  double diff = (ya - yb).abs().max().item<double>();
  double tol = 1e-4 + 1e-3 * ya.abs().max().item<double>();
  spdlog::info("max subnet vs original: max |diff| {:.3g} (tolerance {:.3g})", diff, tol);
  if (!(diff <= tol))
    throw Error(
        fmt::format("internal: the reordered max subnet differs from the model by {:.3g}", diff));
}

struct SupernetArgs {
  std::string model, out;
  SpaceFlags flags;
};

struct SubnetArgs {
  std::string dir, subnet = "max", out, data;
  std::vector<std::string> inputs, outputs;
};

}  // namespace

void add_supernet(CLI::App& app) {
  auto a = std::make_shared<SupernetArgs>();
  auto* cmd =
      app.add_subcommand("supernet", "Turn a model into a SuperNet: supernet.onnx + space.json");
  cmd->add_option("model", a->model, "ONNX model file")->required();
  cmd->add_option("-o,--output", a->out, "Output directory")->required();
  a->flags.add(cmd);
  cmd->callback([a] {
    ensure_writable_dir(a->out);
    DirLock lock(a->out);
    for (const char* f : {"supernet.onnx", "space.json"})
      refuse_same_file((fs::path(a->out) / f).string(), a->model, "the input model");
    make_supernet(import_for_training(a->model), a->out, a->flags);
  });
}

supernet::Supernet make_supernet(std::shared_ptr<const ir::Graph> g, const std::string& out,
                                 const SpaceFlags& flags) {
  {
    ensure_writable_dir(out);
    supernet::Supernet plain(g, flags.resolved());
    flags.narrow(plain.space());
    supernet::Supernet s = plain.reordered_by_importance();
    check_max_subnet(*g, s);
    s.save(out);
    const auto& sp = s.space();
    spdlog::info(
        "{}: {} elastic width groups, {} skippable blocks in {} stages, {} elastic "
        "kernels, {} resolutions: 10^{:.2f} subnets",
        out, sp.elastic_groups(), sp.blocks.size(), sp.stages.size(), sp.elastic_kernels(),
        std::max<size_t>(1, sp.resolutions.size()), sp.log10_size());
    return s;
  }
}

void add_export(CLI::App& app) {
  auto a = std::make_shared<SubnetArgs>();
  auto* cmd = app.add_subcommand("export", "Write one subnet of a SuperNet as a plain ONNX file");
  cmd->add_option("dir", a->dir, "Directory made by `supernet` or `compile`")->required();
  cmd->add_option("--subnet", a->subnet, "max, min, mid, random:SEED or a subnet JSON file");
  cmd->add_option("-o,--output", a->out, "ONNX file to write")->required();
  cmd->add_option("--data", a->data,
                  "Data to recalibrate BatchNorm on (default: what `finetune` recorded)");
  cmd->callback([a] {
    supernet::Supernet s = supernet::Supernet::load(a->dir);
    supernet::SubnetConfig c = supernet::parse_subnet_spec(a->subnet, s.space());
    for (const char* f : {"supernet.onnx", "space.json", "finetune.ckpt"})
      refuse_same_file(a->out, (fs::path(a->dir) / f).string(), "part of the SuperNet it reads");
    export_graph(*inference_subnet(a->dir, s, c, a->data), s.graph().name, a->out);
    spdlog::info("wrote {}", a->out);
  });
}

// `run` on a SuperNet directory: the subnet executes on views of the shared weights.
void run_subnet(const std::string& dir, const std::string& spec,
                const std::vector<std::string>& inputs, const std::vector<std::string>& outputs) {
  supernet::Supernet s = supernet::Supernet::load(dir);
  std::shared_ptr<const ir::Graph> g =
      inference_subnet(dir, s, supernet::parse_subnet_spec(spec, s.space()));
  if (inputs.size() != g->inputs.size())
    fail("--input: the subnet takes {} input(s), {} given", g->inputs.size(), inputs.size());
  if (outputs.size() > g->outputs.size())
    fail("--output: the subnet has {} output(s), {} given", g->outputs.size(), outputs.size());
  std::vector<at::Tensor> xs;
  for (const std::string& p : inputs) xs.push_back(exec::tensor_from_const(read_tensor_file(p)));
  exec::Executor ex(g);
  std::vector<at::Tensor> ys = ex.run(xs);
  for (size_t k = 0; k < outputs.size(); ++k)
    write_tensor_file(outputs[k], *exec::const_from_tensor(ys[k]), g->tensor(g->outputs[k]).name);
}

}  // namespace autotailor::cli
