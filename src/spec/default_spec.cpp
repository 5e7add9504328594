#include "fuseblock/fuseblock.hpp"

namespace fuseblock {

// KernelBench level 2, problem 83: Conv3d -> GroupNorm -> min -> clamp -> Dropout, in training
// mode as KernelBench runs its reference.
const char* const kDefaultSpec =
    "# KernelBench level 2, problem 83\n"
    "input f32[128, 3, 16, 64, 64]\n"
    "conv3d out_channels=16 kernel_size=3\n"
    "group_norm num_groups=8 eps=1e-5\n"
    "minimum 0.0\n"
    "clamp min=0.0 max=1.0\n"
    "dropout p=0.2 training=true\n";

}  // namespace fuseblock
