#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <spdlog/spdlog.h>

#include <filesystem>

#include "autotailor/common/error.h"
#include "autotailor/exec/executor.h"
#include "autotailor/import/onnx_import.h"
#include "autotailor/import/tensor_file.h"
#include "commands.h"

namespace autotailor::cli {

namespace {
struct RunArgs {
  std::string model, subnet;
  std::vector<std::string> inputs, outputs;
};
}  // namespace

void add_run(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand("run", "Execute a model on TensorProto (.pb) inputs");
  cmd->add_option("model", a->model, "ONNX model file, or a directory made by `supernet`")
      ->required();
  cmd->add_option(
      "--subnet", a->subnet,
      "With a directory: max, min, mid, random:SEED or a subnet JSON file (default max)");
  cmd->add_option("--input", a->inputs, "Input tensor file (.pb), one per graph input, in order")
      ->required();
  cmd->add_option("--output", a->outputs, "Where to write each graph output (.pb), in order")
      ->required();
  cmd->callback([a] {
    if (std::filesystem::is_directory(a->model))
      return run_subnet(a->model, a->subnet.empty() ? "max" : a->subnet, a->inputs, a->outputs);
    if (!a->subnet.empty())
      usage_fail("--subnet needs a SuperNet directory; '{}' is a model file", a->model);
    std::shared_ptr<const ir::Graph> g = import_onnx(a->model);
    if (a->inputs.size() != g->inputs.size())
      fail("--input: '{}' takes {} input(s), {} given", a->model, g->inputs.size(),
           a->inputs.size());
    if (a->outputs.size() > g->outputs.size())
      fail("--output: '{}' has {} output(s), {} given", a->model, g->outputs.size(),
           a->outputs.size());
    std::vector<at::Tensor> inputs;
    for (const std::string& path : a->inputs)
      inputs.push_back(exec::tensor_from_const(read_tensor_file(path)));
    exec::Executor ex(g);
    std::vector<at::Tensor> outputs;
    {
      c10::InferenceMode guard;
      outputs = ex.run(inputs);
    }
    for (size_t k = 0; k < a->outputs.size(); ++k) {
      write_tensor_file(a->outputs[k], *exec::const_from_tensor(outputs[k]),
                        g->tensor(g->outputs[k]).name);
      spdlog::debug("wrote {} ({})", a->outputs[k], g->tensor(g->outputs[k]).name);
    }
  });
}

}  // namespace autotailor::cli
