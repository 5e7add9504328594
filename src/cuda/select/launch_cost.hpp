// The cost model that ranks strategies: each step takes the longer of its bytes
// at the copy bandwidth and its FLOPs at its engine's rate; the sum is divided
// by the strategy's measured efficiency (the share of this floor it reached on
// a GPU). A library conv step is priced at its dtype's tensor-core rate and the
// library's own efficiency at its reduction length. Rates are
// the H200's measured ceilings (design.md section 4); FMA is its fp32 datasheet
// rate (not measured).
#pragma once
#include "cuda/program/launch_program.hpp"

namespace fuseblock::cuda {

struct DeviceCeilings {
  double copy_bytes_per_s = 4.19e12;  // read + write, device-to-device copy
  double tf32_flops = 390e12;         // TF32 tensor-core matmul
  double fp32_fma_flops = 67e12;      // fp32 FMA (datasheet)
  double half_flops = 793e12;         // bf16/f16 tensor-core matmul
};

// The rate a library conv step (cuDNN) runs at: the tensor-core rate of its dtype (TF32 where
// allowed), strict fp32 at the FMA rate.
double library_conv_flops_rate(const LibraryConvDesc& d, const DeviceCeilings& c = {});
// The share of that floor the library reaches, which grows with the GEMM's reduction length
// (C_in x kernel volume): short reductions leave the tensor cores idle.
double library_conv_efficiency(const LibraryConvDesc& d);

// The floor of a program's run in ms: sum over steps of max(bytes / copy rate,
// FLOPs / rate).
double launch_floor_ms(const LaunchProgram& p, bool tensor_cores, const DeviceCeilings& c = {});

}  // namespace fuseblock::cuda
