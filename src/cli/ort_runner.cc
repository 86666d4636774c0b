#include "ort_runner.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "autotailor/common/error.h"

extern char** environ;

namespace autotailor::cli {

std::string ort_runner() {
  if (const char* env = std::getenv("AUTOTAILOR_ORT_RUNNER")) {
    if (!std::filesystem::exists(env)) fail("AUTOTAILOR_ORT_RUNNER={}: no such file", env);
    return env;
  }
  std::string p = AUTOTAILOR_TOOLS_DIR "/ort_run.js";
  if (!std::filesystem::exists(p))
    fail("{} is missing: set AUTOTAILOR_ORT_RUNNER to tools/ort_run.js of an autotailor checkout",
         p);
  return p;
}

std::string run_ort(const std::vector<std::string>& args) {
  std::vector<std::string> argv_s = {"node", ort_runner()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  // stdout through a pipe; stderr into a file, read for the error message.
  std::string err_path = (std::filesystem::temp_directory_path() /
                          ("autotailor-ort." + std::to_string(::getpid()) + ".err"))
                             .string();
  int out[2];
  if (pipe(out) != 0) fail("cannot create a pipe to run node");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, "node", &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  if (rc != 0) {
    close(out[0]);
    fail("cannot run node (Node.js is needed for ONNX Runtime; run tools/setup.sh)");
  }
  std::string so;
  char buf[4096];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof buf)) > 0) so.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  std::string se;
  if (FILE* f = std::fopen(err_path.c_str(), "r")) {
    while ((n = static_cast<ssize_t>(std::fread(buf, 1, sizeof buf, f))) > 0)
      se.append(buf, static_cast<size_t>(n));
    std::fclose(f);
  }
  std::filesystem::remove(err_path);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    while (!se.empty() && se.back() == '\n') se.pop_back();
    size_t nl = se.rfind('\n');
    std::string last = nl == std::string::npos ? se : se.substr(nl + 1);
    fail("ONNX Runtime runner failed: {}", last.empty() ? "no message" : last);
  }
  return so;
}

double ort_median_ms(const std::string& model, int threads, int runs) {
  std::string out = run_ort({"bench", model, "--threads", std::to_string(threads), "--runs",
                             std::to_string(runs), "--warmup", "5"});
  nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  if (j.is_discarded() || !j.contains("median_ms"))
    fail("ONNX Runtime runner: unexpected output for {}", model);
  return j["median_ms"].get<double>();
}

std::vector<std::vector<double>> ort_round_medians(const std::vector<std::string>& models,
                                                   int threads, int rounds, int runs, int warmup) {
  std::vector<std::string> args = {"bench"};
  args.insert(args.end(), models.begin(), models.end());
  for (const auto& [k, v] : std::vector<std::pair<std::string, int>>{
           {"--threads", threads}, {"--rounds", rounds}, {"--runs", runs}, {"--warmup", warmup}}) {
    args.push_back(k);
    args.push_back(std::to_string(v));
  }
  nlohmann::json j = nlohmann::json::parse(run_ort(args), nullptr, false);
  if (j.is_discarded() || !j.contains("models") || j["models"].size() != models.size())
    fail("ONNX Runtime runner: unexpected output timing {} models", models.size());
  std::vector<std::vector<double>> out;
  for (const auto& m : j["models"])
    out.push_back(m.at("round_median_ms").get<std::vector<double>>());
  return out;
}

}  // namespace autotailor::cli
