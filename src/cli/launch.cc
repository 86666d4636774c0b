// `--nproc N`: the torchrun way on one machine. The launching process starts N copies of this
// command with RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set and waits for them.
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "autotailor/common/error.h"
#include "autotailor/train/distributed.h"
#include "commands.h"

extern char** environ;

namespace autotailor::cli {

namespace {

std::vector<std::string>& command_line() {
  static std::vector<std::string> args;
  return args;
}

// A port the kernel says is free now (the workers bind it a moment later).
uint16_t free_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) fail("--nproc: cannot open a socket: {}", std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(s);
    fail("--nproc: cannot find a free port on 127.0.0.1: {}", std::strerror(errno));
  }
  ::close(s);
  return ntohs(a.sin_port);
}

}  // namespace

void set_command_line(int argc, char** argv) {
  command_line().assign(argv, argv + argc);
}

DistributedLaunch launch_processes(int nproc) {
  DistributedLaunch r;
  if (nproc > 1 && !std::getenv("RANK")) {
    uint16_t port = free_port();
    std::vector<std::string> base_env;
    for (char** e = environ; *e; ++e) {
      std::string v = *e;
      for (const char* k : {"RANK=", "WORLD_SIZE=", "MASTER_ADDR=", "MASTER_PORT=", "LOCAL_RANK="})
        if (v.rfind(k, 0) == 0) v.clear();
      if (!v.empty()) base_env.push_back(v);
    }
    std::vector<pid_t> pids;
    for (int rank = 0; rank < nproc; ++rank) {
      std::vector<std::string> env = base_env;
      env.push_back("RANK=" + std::to_string(rank));
      env.push_back("LOCAL_RANK=" + std::to_string(rank));
      env.push_back("WORLD_SIZE=" + std::to_string(nproc));
      env.push_back("MASTER_ADDR=127.0.0.1");
      env.push_back("MASTER_PORT=" + std::to_string(port));
      std::vector<char*> argv, envp;
      for (std::string& s : command_line()) argv.push_back(s.data());
      argv.push_back(nullptr);
      for (std::string& s : env) envp.push_back(s.data());
      envp.push_back(nullptr);
      pid_t pid = 0;
      if (int err =
              ::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data()))
        fail("--nproc: cannot start worker {}: {}", rank, std::strerror(err));
      pids.push_back(pid);
    }
    spdlog::info("started {} worker processes (rendezvous on 127.0.0.1:{})", nproc, port);
    std::string failure;
    for (size_t left = pids.size(); left > 0; --left) {
      int status = 0;
      pid_t pid = ::waitpid(-1, &status, 0);
      if (pid < 0) break;
      bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!ok && failure.empty()) {
        size_t rank = std::find(pids.begin(), pids.end(), pid) - pids.begin();
        failure = WIFEXITED(status)
                      ? fmt::format("worker {} exited with status {}", rank, WEXITSTATUS(status))
                      : fmt::format("worker {} was killed by signal {}", rank, WTERMSIG(status));
        // The others would wait for it in the next allreduce: stop them.
        for (pid_t p : pids)
          if (p != pid) ::kill(p, SIGTERM);
      }
    }
    if (!failure.empty()) fail("--nproc: {}", failure);
    r.parent_done = true;
    return r;
  }
  r.collective = train::join_from_environment();
  return r;
}

}  // namespace autotailor::cli
