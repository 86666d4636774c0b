// Data-parallel training across processes: LibTorch's c10d ProcessGroupGloo with a TCPStore
// rendezvous, set up the torchrun way (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "autotailor/train/trainer.h"

namespace autotailor::train {

// Joins the process group the environment describes; null when WORLD_SIZE is unset or 1.
// MASTER_ADDR defaults to 127.0.0.1 and MASTER_PORT to 29500. Throws Error naming the variable
// that is malformed, or the rendezvous that timed out.
std::unique_ptr<Collective> join_from_environment();

}  // namespace autotailor::train
