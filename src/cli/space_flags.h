// Options that shape a search space, shared by `inspect --space` and `supernet`.
#pragma once

#include <CLI/CLI.hpp>

#include "autotailor/common/files.h"
#include "autotailor/supernet/space.h"
#include "autotailor/supernet/supernet.h"

namespace autotailor::cli {

struct SpaceFlags {
  supernet::SpaceOptions options;
  std::string config;  // JSON narrowing choices, in the space.json format
  bool no_width = false, no_depth = false, no_kernel = false, no_resolution = false;

  void add(CLI::App* cmd) {
    cmd->add_option("--width-ratios", options.width_ratios, "Width choices as fractions of full")
        ->delimiter(',')
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--width-multiple", options.width_multiple, "Round widths to a multiple of")
        ->check(CLI::Range(1, 1024));
    cmd->add_option("--resolutions", options.resolutions, "How many input sizes (0.5x to 1x)")
        ->check(CLI::Range(1, 32));
    cmd->add_option("--freeze", options.freeze, "Keep this group, stage or conv at its maximum")
        ->delimiter(',');
    cmd->add_flag("--no-width", no_width, "Switch elastic width off");
    cmd->add_flag("--no-depth", no_depth, "Switch elastic depth off");
    cmd->add_flag("--no-kernel", no_kernel, "Switch elastic kernel size off");
    cmd->add_flag("--no-resolution", no_resolution, "Switch elastic resolution off");
    cmd->add_option("--space-config", config,
                    "JSON file narrowing choices (same layout as space.json)")
        ->check(CLI::ExistingFile);
  }

  supernet::SpaceOptions resolved() const {
    supernet::SpaceOptions o = options;
    o.elastic_width = !no_width;
    o.elastic_depth = !no_depth;
    o.elastic_kernel = !no_kernel;
    o.elastic_resolution = !no_resolution;
    return o;
  }

  void narrow(supernet::SearchSpace& s) const {
    if (!config.empty()) supernet::apply_space_json(s, read_file(config), config);
  }
};

// `supernet`: analyses, reorders by importance, checks that the max subnet reproduces the
// model, and writes DIR/supernet.onnx and DIR/space.json.
supernet::Supernet make_supernet(std::shared_ptr<const ir::Graph> g, const std::string& out,
                                 const SpaceFlags& flags);

}  // namespace autotailor::cli
