// The PTX store verifier passes kernels that write only their outputs and fails planted bad ones:
// an intermediate store, a store into an input, local memory, a store through a loaded pointer.
#include <gtest/gtest.h>

#include "cuda/runtime/driver_api.hpp"
#include "cuda/runtime/nvrtc_compile.hpp"
#include "verify/ptx_stores.hpp"

using namespace fuseblock;

namespace {

verify::PtxKernelReport check(const std::string& src, const std::string& kernel, std::set<int> allowed, std::set<int> inputs) {
  cuda::CompileRequest req;
  req.source = src;
  req.arch = "sm_90";
  cuda::CompiledProgram prog = cuda::compile_program(req);
  auto reports = verify::check_ptx_stores(prog.ptx, {{kernel, allowed, inputs}});
  EXPECT_EQ(reports.size(), 1u);
  return reports.at(0);
}

class VerifyPtx : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!cuda::nvrtc_available(&why)) GTEST_SKIP() << "NVRTC not available: " << why;
  }
};

}  // namespace

TEST_F(VerifyPtx, OutputOnlyKernelPasses) {
  auto r = check(R"(extern "C" __global__ void scale(const float* x, float* y, long long n, float a) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] * a;
  })", "scale", {1}, {0});
  EXPECT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.stores.size(), 1u) << r.describe();
}

TEST_F(VerifyPtx, StatsAtomicsAreAllowedScratch) {
  auto r = check(R"(extern "C" __global__ void stats(const float* x, float* sums, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { atomicAdd(&sums[i % 4], x[i]); atomicAdd(&sums[4 + i % 4], x[i] * x[i]); }
  })", "stats", {1}, {0});
  EXPECT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.stores.size(), 2u) << r.describe();
}

TEST_F(VerifyPtx, IntermediateStoreFails) {
  auto r = check(R"(extern "C" __global__ void two_pass(const float* x, float* tmp, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { tmp[i] = x[i] * 2.0f; y[i] = tmp[i] + 1.0f; }
  })", "two_pass", {2}, {0});
  EXPECT_FALSE(r.ok()) << r.describe();
  int bad = 0;
  for (const auto& s : r.stores) bad += !s.allowed;
  EXPECT_EQ(bad, 1) << r.describe();
}

TEST_F(VerifyPtx, StoreIntoInputFails) {
  auto r = check(R"(extern "C" __global__ void clobber(float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { y[i] = x[i]; x[i] = 0.0f; }
  })", "clobber", {1}, {0});
  EXPECT_FALSE(r.ok()) << r.describe();
}

TEST_F(VerifyPtx, StoreThroughLoadedPointerFails) {
  auto r = check(R"(extern "C" __global__ void chase(float** table, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { table[0][i] = 1.0f; y[i] = 2.0f; }
  })", "chase", {1}, {0});
  EXPECT_FALSE(r.ok()) << r.describe();
}

TEST_F(VerifyPtx, LocalMemoryFails) {
  auto r = check(R"(extern "C" __global__ void stack(const float* x, float* y, int n, int k) {
    float a[64];
    for (int j = 0; j < 64; ++j) a[j] = x[(j * 7 + threadIdx.x) % n];
    y[threadIdx.x] = a[k & 63];
  })", "stack", {1}, {0});
  EXPECT_FALSE(r.ok()) << r.describe();
  EXPECT_FALSE(r.local_uses.empty()) << r.describe();
}
