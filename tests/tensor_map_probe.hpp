// A one-kernel program shared by the CPU and GPU suites that proves the tensor-map argument kind
// and the per-program target end to end: fb_tma_probe takes a `const __grid_constant__` tensor map
// over a [kRows x kCols] float32 matrix, loads one [kBoxRows x kBoxCols] box at (kCol0, kRow0) into
// shared memory with TMA (cp.async.bulk.tensor, completing on an mbarrier) and writes it out. The
// box overhangs the matrix's right and bottom edges, so the elements past them must read 0 (the
// map's out-of-bounds fill): a wrong extent, stride or box in the encoding shows. The kernel also
// executes wgmma.fence, an sm_90a instruction, so the program builds for sm_90a only.
#pragma once
#include <string>

#include "cuda/codegen/emit_tensor_map.hpp"
#include "cuda/program/launch_program.hpp"
#include "cuda/strategies/program_parts.hpp"

namespace fbprobe {

using namespace fuseblock;

inline constexpr int kRows = 20, kCols = 24, kBoxRows = 8, kBoxCols = 16, kRow0 = 16, kCol0 = 12;

inline std::string tensor_map_probe_source() {
  cuda::SourceWriter w;
  cuda::emit_tensor_map_type(w);
  w.raw(R"(extern "C" __global__ void __launch_bounds__(128)
fb_tma_probe(const __grid_constant__ fb_tensor_map map, float* __restrict__ out) {
  __shared__ __align__(128) float tile[BOX_ELEMS];
  __shared__ __align__(8) unsigned long long bar;
  const unsigned tile_at = static_cast<unsigned>(__cvta_generic_to_shared(tile));
  const unsigned bar_at = static_cast<unsigned>(__cvta_generic_to_shared(&bar));
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
  if (threadIdx.x == 0) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(bar_at));
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned long long state;
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 %0, [%1], %2;\n"
                 : "=l"(state) : "r"(bar_at), "r"(BOX_ELEMS * 4) : "memory");
    (void)state;
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
        ::"r"(tile_at), "l"(reinterpret_cast<unsigned long long>(&map)), "r"(COL0), "r"(ROW0), "r"(bar_at)
        : "memory");
  }
  unsigned done = 0;
  while (!done)
    asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0;\n selp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done) : "r"(bar_at) : "memory");
  for (int i = threadIdx.x; i < BOX_ELEMS; i += blockDim.x) out[i] = tile[i];
}
)");
  std::string s = w.str();
  auto put = [&](const std::string& name, int v) {
    for (size_t at; (at = s.find(name)) != std::string::npos;) s.replace(at, name.size(), std::to_string(v));
  };
  put("BOX_ELEMS", kBoxRows * kBoxCols);
  put("COL0", kCol0);
  put("ROW0", kRow0);
  return s;
}

// The matrix as a tiled map: dimensions innermost first (columns, rows), rows kCols * 4 bytes apart.
inline cuda::TensorMapDesc tensor_map_probe_desc() {
  cuda::TensorMapDesc t;
  t.dtype = DType::F32;
  t.rank = 2;
  t.dims = {kCols, kRows, 0, 0, 0};
  t.strides_bytes = {0, kCols * 4, 0, 0, 0};
  t.box = {kBoxCols, kBoxRows, 0, 0, 0};
  return t;
}

// The matrix is the program's input, the box its output.
inline cuda::LaunchProgram tensor_map_probe_program() {
  using R = cuda::BufferRole;
  cuda::LaunchProgram p;
  p.strategy = "tensor_map_probe";
  p.config = "one TMA box";
  p.target = "sm_90a";
  p.source = tensor_map_probe_source();
  p.buffers.push_back({R::Input, cuda::BufferKind::Input, size_t{kRows * kCols * 4}});
  p.buffers.push_back({R::Output, cuda::BufferKind::Output, size_t{kBoxRows * kBoxCols * 4}});
  cuda::Grid g;
  g.grid_x = 1;
  cuda::Step s = cuda::kernel_step("fb_tma_probe", 128, 0, g,
                                   {cuda::Arg::map(R::Input, tensor_map_probe_desc()), cuda::Arg::buffer(R::Output)});
  s.reads = {R::Input};
  s.writes = {R::Output};
  s.note = "one box of the input through TMA";
  p.steps.push_back(s);
  return p;
}

}  // namespace fbprobe
