// Shared by the test programs: fixture paths, running the CLI, and the numeric comparison of
// invariant 1 (|a-b| <= 1e-4 + 1e-3*max|b|).
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "autotailor/exec/executor.h"
#include "autotailor/import/tensor_file.h"

#include <sys/wait.h>
#include <unistd.h>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace autotailor::test {

inline std::string fixture(const std::string& name) {
  std::string path = AUTOTAILOR_FIXTURES;  // appends, not operator+: GCC 12 warns falsely there
  path += "/models/";
  path += name;
  return path;
}

// tools/reference_models.py's random-init exports (32x32x3, 10 classes).
inline std::string reference(const std::string& name) {
  std::string path = AUTOTAILOR_FIXTURES;
  path += "/reference/";
  path += name;
  path += ".onnx";
  return path;
}

// Starts `autotailor ARGS` in the background with its output discarded; returns its pid (for
// kill -9 trials).
inline pid_t start_cli(const std::string& args) {
  std::string cmd =
      std::string("exec ") + AUTOTAILOR_BINARY + " " + args + " 2>/dev/null >/dev/null";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

inline std::string temp_dir(const std::string& stem) {
  auto dir = std::filesystem::temp_directory_path() /
             (stem + "." + std::to_string(::getpid()) + "." +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

struct CliResult {
  int status = -1;  // exit status; -1 when killed by a signal
  int signal = 0;   // the signal that ended it, if any
  std::string out, err;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs build/autotailor with `args` (already shell-quoted where needed).
inline CliResult run_cli(const std::string& args) {
  std::string base = std::filesystem::temp_directory_path() / ("cli." + std::to_string(::getpid()));
  std::string cmd = std::string(AUTOTAILOR_BINARY) + " " + args + " >" + base + ".out 2>" + base +
                    ".err </dev/null";
  int raw = std::system(cmd.c_str());
  CliResult r;
  if (WIFEXITED(raw)) r.status = WEXITSTATUS(raw);
  if (WIFSIGNALED(raw)) r.signal = WTERMSIG(raw);
  // system() runs a shell: a signal inside shows up as status 128+N.
  if (r.status > 128 && r.status < 160) {
    r.signal = r.status - 128;
    r.status = -1;
  }
  r.out = slurp(base + ".out");
  r.err = slurp(base + ".err");
  std::filesystem::remove(base + ".out");
  std::filesystem::remove(base + ".err");
  return r;
}

// Invariant 1 of the design: |a-b| <= 1e-4 + 1e-3*max|b|, elementwise, b the reference.
inline ::testing::AssertionResult all_close(const at::Tensor& got, const at::Tensor& want,
                                            double atol = 1e-4, double rtol = 1e-3) {
  if (got.sizes() != want.sizes())
    return ::testing::AssertionFailure()
           << "shape " << got.sizes() << " differs from reference " << want.sizes();
  at::Tensor a = got.to(at::kDouble), b = want.to(at::kDouble);
  double scale = b.numel() ? b.abs().max().item<double>() : 0.0;
  double diff = a.numel() ? (a - b).abs().max().item<double>() : 0.0;
  double tol = atol + rtol * scale;
  if (diff <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max |diff| " << diff << " > tolerance " << tol;
}

// Runs `model` in ONNX Runtime (tools/ort_run.js, the independent check of our exports) on one
// input; files go to `dir`.
inline at::Tensor run_onnxruntime(const std::string& model, const at::Tensor& input,
                                  const std::string& dir) {
  std::string in = dir + "/ort_in.pb", out = dir + "/ort_out.pb";
  autotailor::write_tensor_file(in, *autotailor::exec::const_from_tensor(input));
  std::filesystem::remove(out);
  std::string cmd = "node " + std::string(AUTOTAILOR_SOURCE_DIR) + "/tools/ort_run.js run '" +
                    model + "' --input " + in + " --output " + out + " 2>" + dir + "/ort.err";
  if (std::system(cmd.c_str()) != 0) {
    ADD_FAILURE() << "ONNX Runtime failed on " << model << ": " << slurp(dir + "/ort.err");
    return {};
  }
  return autotailor::exec::tensor_from_const(autotailor::read_tensor_file(out));
}

// Python's ONNX checker (full check) over files; true when every one passes. The models are
// loaded first: given a path, check_model(full_check=True) writes the shape-inferred model
// back over the file (compile's SHA-256 verification caught it).
inline ::testing::AssertionResult python_onnx_checker(const std::vector<std::string>& files) {
  std::string cmd =
      "/usr/bin/python3 -c \"import onnx,sys; [onnx.checker.check_model(onnx.load(p), "
      "full_check=True) for p in sys.argv[1:]]\"";
  for (const auto& f : files) cmd += " '" + f + "'";
  if (std::system((cmd + " >/dev/null 2>&1").c_str()) == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "onnx.checker rejected one of " << files.size() << " files";
}

}  // namespace autotailor::test
