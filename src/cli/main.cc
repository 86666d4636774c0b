// autotailor: ONNX import -> TailorIR -> SuperNet -> fine-tuning -> latency LUT -> search ->
// export. Logs go to stderr, machine-readable output to stdout; any failure is one line on
// stderr and a non-zero exit status.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <fmt/format.h>

#include <csignal>
#include <iostream>
#include <new>

#include "autotailor/common/error.h"
#include "commands.h"

int main(int argc, char** argv) {
  // Past a file-size limit (ulimit -f) a write fails with EFBIG and we report it, naming the
  // file, rather than dying of SIGXFSZ with a temporary left behind.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"autotailor: adapt a pre-trained ONNX image classifier to latency budgets"};
  app.set_version_flag("--version", std::string("autotailor ") + AUTOTAILOR_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // -v and -q also after the subcommand
  int verbosity = 0;
  bool quiet = false;
  app.add_flag("-v,--verbose", verbosity, "More log output (repeat for more)");
  app.add_flag("-q,--quiet", quiet, "Only warnings and errors on stderr");
  app.failure_message(CLI::FailureMessage::simple);

  autotailor::cli::add_devices(app);
  autotailor::cli::add_inspect(app);
  autotailor::cli::add_run(app);
  autotailor::cli::add_bench(app);
  autotailor::cli::add_supernet(app);
  autotailor::cli::add_export(app);
  autotailor::cli::add_profile(app);
  autotailor::cli::add_predict(app);
  autotailor::cli::add_validate_latency(app);
  autotailor::cli::add_train(app);
  autotailor::cli::add_search(app);
  autotailor::cli::add_compile(app);
  autotailor::cli::set_command_line(argc, argv);

  auto logger = spdlog::stderr_color_mt("autotailor");
  logger->set_pattern("%^[%l]%$ %v");
  spdlog::set_default_logger(logger);
  app.parse_complete_callback([&] {
    spdlog::set_level(quiet            ? spdlog::level::warn
                      : verbosity >= 2 ? spdlog::level::trace
                      : verbosity == 1 ? spdlog::level::debug
                                       : spdlog::level::info);
  });

  try {
    // CLI11 would only say "a subcommand is required" for a misspelt command: name it.
    if (argc > 1 && argv[1][0] != '-') {
      auto subs = app.get_subcommands([&](CLI::App* s) { return s->get_name() == argv[1]; });
      if (subs.empty())
        throw autotailor::Error(fmt::format("unknown command '{}' (see --help)", argv[1]));
    }
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string msg = e.what();
    std::replace(msg.begin(), msg.end(), '\n', ' ');
    std::cerr << "autotailor: error: " << msg << " (see --help)\n";
    return 2;  // bad options, whatever CLI11's own code
  } catch (const autotailor::UsageError& e) {
    std::cerr << "autotailor: error: " << e.what() << " (see --help)\n";
    return 2;
  } catch (const autotailor::Error& e) {
    std::cerr << "autotailor: error: " << e.what() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "autotailor: error: out of memory (the model, its inputs or --batch are too "
                 "large for this machine)\n";
    return 1;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (msg.find("can't allocate memory") != std::string::npos) {  // LibTorch's allocator
      std::cerr << "autotailor: error: out of memory: " << msg.substr(0, msg.find('\n')) << "\n";
      return 1;
    }
    std::cerr << "autotailor: internal error: " << msg.substr(0, msg.find('\n')) << "\n";
    return 3;
  }
  return 0;
}
