// cuDNN's conv (cuda/runtime/cudnn_conv.hpp) against a float64 loop on the host: conv1d, 2d and
// 3d; stride, padding and dilation; NCHW and channels-last; strict fp32, TF32, bf16 and f16.
// Inputs are random values exact in the storage type, the output is poisoned with NaN before
// the run, and every element must come within the dtype's tolerance of the reference, relative
// to the output's scale: |y - ref| <= rtol * (rms(ref) + |ref|). The strict fp32 cases have
// enough channels that cuDNN would choose a TF32 tensor-core engine if it were allowed, and
// TF32's error is about 100 times their tolerance. Also: executors of one conv share its plan,
// and one conv runs from several threads on their own streams at once.
#include <fmt/format.h>

#include <array>
#include <cmath>
#include <cstring>
#include <memory>
#include <ostream>
#include <random>
#include <thread>
#include <vector>

#include "cuda/runtime/cudnn_conv.hpp"
#include "cuda/runtime/device_context.hpp"
#include "cuda/runtime/device_memory.hpp"
#include "cuda/runtime/driver_api.hpp"
#include "gpu_support.hpp"

namespace fbgpu {
namespace {

using cuda::LibraryConvDesc;

struct Case {
  const char* name;
  int dims;
  int64_t n, c_in, c_out;
  std::array<int64_t, 3> in, kernel, stride, padding, dilation;
  DType dtype;
  bool tf32;
  bool channels_last;
};

// The case's name, in test names and ctest's listing (not its bytes).
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// Unused spatial entries are 1 (size, kernel, stride, dilation) and 0 (padding).
// clang-format off
const Case kCases[] = {
    {"conv2d_f32_strict", 2, 2, 64, 64, {32, 32, 1}, {3, 3, 1}, {1, 1, 1}, {1, 1, 0}, {1, 1, 1}, DType::F32, false, false},
    {"conv2d_f32_strict_cl", 2, 2, 64, 48, {17, 23, 1}, {3, 3, 1}, {2, 1, 1}, {1, 1, 0}, {1, 1, 1}, DType::F32, false, true},
    {"conv2d_tf32", 2, 2, 64, 64, {32, 32, 1}, {3, 3, 1}, {1, 1, 1}, {1, 1, 0}, {1, 1, 1}, DType::F32, true, false},
    {"conv2d_tf32_dilated_cl", 2, 3, 32, 40, {21, 19, 1}, {3, 5, 1}, {1, 2, 1}, {2, 4, 0}, {2, 2, 1}, DType::F32, true, true},
    {"conv2d_bf16", 2, 2, 32, 64, {24, 20, 1}, {3, 3, 1}, {1, 1, 1}, {1, 1, 0}, {1, 1, 1}, DType::BF16, true, false},
    {"conv2d_bf16_cl_stride2", 2, 2, 32, 64, {24, 20, 1}, {4, 4, 1}, {2, 2, 1}, {1, 1, 0}, {1, 1, 1}, DType::BF16, true, true},
    {"conv2d_f16_odd_channels", 2, 3, 3, 5, {13, 11, 1}, {3, 3, 1}, {1, 1, 1}, {0, 2, 0}, {1, 1, 1}, DType::F16, true, false},
    {"conv2d_f16_cl", 2, 2, 16, 24, {15, 16, 1}, {5, 5, 1}, {1, 1, 1}, {2, 2, 0}, {1, 1, 1}, DType::F16, true, true},
    {"conv1d_f32_strict", 1, 4, 48, 32, {100, 1, 1}, {5, 1, 1}, {2, 1, 1}, {2, 0, 0}, {1, 1, 1}, DType::F32, false, false},
    {"conv1d_tf32_dilated", 1, 2, 16, 16, {64, 1, 1}, {3, 1, 1}, {1, 1, 1}, {3, 0, 0}, {3, 1, 1}, DType::F32, true, false},
    {"conv1d_bf16_cl", 1, 3, 32, 32, {50, 1, 1}, {7, 1, 1}, {3, 1, 1}, {3, 0, 0}, {1, 1, 1}, DType::BF16, true, true},
    {"conv1d_f16", 1, 2, 8, 24, {77, 1, 1}, {4, 1, 1}, {1, 1, 1}, {0, 0, 0}, {2, 1, 1}, DType::F16, true, false},
    {"conv3d_f32_strict", 3, 2, 16, 16, {8, 10, 9}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, DType::F32, false, false},
    {"conv3d_f32_strict_cl_stride", 3, 1, 16, 8, {9, 8, 11}, {3, 3, 3}, {2, 2, 1}, {1, 0, 1}, {1, 1, 1}, DType::F32, false, true},
    {"conv3d_tf32_dilated", 3, 2, 8, 16, {10, 9, 8}, {3, 3, 3}, {1, 1, 1}, {2, 2, 2}, {2, 2, 2}, DType::F32, true, false},
    {"conv3d_bf16_cl", 3, 2, 16, 32, {6, 8, 10}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, DType::BF16, true, true},
    {"conv3d_f16", 3, 1, 8, 16, {7, 6, 9}, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}, {1, 1, 1}, DType::F16, true, false},
};
// clang-format on

LibraryConvDesc desc_of(const Case& c) {
  std::array<int64_t, 3> out;
  for (int i = 0; i < 3; ++i)
    out[i] = (c.in[i] + 2 * c.padding[i] - c.dilation[i] * (c.kernel[i] - 1) - 1) / c.stride[i] + 1;
  return {.dims = c.dims,
          .n = c.n,
          .c_in = c.c_in,
          .c_out = c.c_out,
          .in = c.in,
          .out = out,
          .kernel = c.kernel,
          .stride = c.stride,
          .padding = c.padding,
          .dilation = c.dilation,
          .dtype = c.dtype,
          .allow_tf32 = c.tf32,
          .channels_last = c.channels_last};
}

double rtol_of(const LibraryConvDesc& d) {
  if (d.dtype != DType::F32) return 2e-2;
  return d.allow_tf32 ? 3e-3 : 1e-5;
}

int64_t volume(const std::array<int64_t, 3>& s) { return s[0] * s[1] * s[2]; }

// Where element (n, c, spatial index s) of an [N, C, S] tensor is stored.
int64_t offset(int64_t n, int64_t c, int64_t s, int64_t channels, int64_t spatial, bool channels_last) {
  return channels_last ? (n * spatial + s) * channels + c : (n * channels + c) * spatial + s;
}

// Host values (logical N, C, spatial order, exact in `dtype`) and their bytes in storage order.
struct HostTensor {
  std::vector<float> values;
  std::vector<uint8_t> bytes;
};

HostTensor random_tensor(int64_t n, int64_t c, int64_t spatial, bool channels_last, DType dtype, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  HostTensor t;
  t.values.resize(static_cast<size_t>(n * c * spatial));
  const int bytes = dtype_info(dtype).bytes;
  t.bytes.resize(t.values.size() * bytes);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j)
      for (int64_t s = 0; s < spatial; ++s) {
        const float v = round_to(dtype, u(rng));
        t.values[static_cast<size_t>((i * c + j) * spatial + s)] = v;
        const int64_t at = offset(i, j, s, c, spatial, channels_last) * bytes;
        if (dtype == DType::F32) {
          std::memcpy(&t.bytes[at], &v, 4);
        } else {
          const uint16_t b = dtype == DType::BF16 ? float_to_bf16_bits(v) : float_to_f16_bits(v);
          std::memcpy(&t.bytes[at], &b, 2);
        }
      }
  return t;
}

float load(const std::vector<uint8_t>& bytes, int64_t index, DType dtype) {
  if (dtype == DType::F32) {
    float v;
    std::memcpy(&v, &bytes[index * 4], 4);
    return v;
  }
  uint16_t b;
  std::memcpy(&b, &bytes[index * 2], 2);
  return dtype == DType::BF16 ? bf16_bits_to_float(b) : f16_bits_to_float(b);
}

// y[n, co, o] = sum over ci, k of x[n, ci, o * stride + k * dilation - padding] * w[co, ci, k], in
// float64, over three spatial dimensions (unused ones of size 1).
std::vector<double> reference(const LibraryConvDesc& d, const std::vector<float>& x, const std::vector<float>& w) {
  const int64_t si = volume(d.in), so = volume(d.out), sk = volume(d.kernel);
  std::vector<double> y(static_cast<size_t>(d.n * d.c_out * so), 0.0);
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t co = 0; co < d.c_out; ++co)
      for (int64_t o0 = 0; o0 < d.out[0]; ++o0)
        for (int64_t o1 = 0; o1 < d.out[1]; ++o1)
          for (int64_t o2 = 0; o2 < d.out[2]; ++o2) {
            double acc = 0;
            for (int64_t ci = 0; ci < d.c_in; ++ci)
              for (int64_t k0 = 0; k0 < d.kernel[0]; ++k0)
                for (int64_t k1 = 0; k1 < d.kernel[1]; ++k1)
                  for (int64_t k2 = 0; k2 < d.kernel[2]; ++k2) {
                    const int64_t i0 = o0 * d.stride[0] + k0 * d.dilation[0] - d.padding[0];
                    const int64_t i1 = o1 * d.stride[1] + k1 * d.dilation[1] - d.padding[1];
                    const int64_t i2 = o2 * d.stride[2] + k2 * d.dilation[2] - d.padding[2];
                    if (i0 < 0 || i0 >= d.in[0] || i1 < 0 || i1 >= d.in[1] || i2 < 0 || i2 >= d.in[2]) continue;
                    const double xv =
                        x[static_cast<size_t>((n * d.c_in + ci) * si + (i0 * d.in[1] + i1) * d.in[2] + i2)];
                    const double wv =
                        w[static_cast<size_t>((co * d.c_in + ci) * sk + (k0 * d.kernel[1] + k1) * d.kernel[2] + k2)];
                    acc += xv * wv;
                  }
            y[static_cast<size_t>((n * d.c_out + co) * so + (o0 * d.out[1] + o1) * d.out[2] + o2)] = acc;
          }
  return y;
}

// The NaN poison, two 16-bit ones or one fp32 per 4-byte word.
uint32_t nan_word(DType d) {
  if (d == DType::F32) return 0x7fc00000u;
  return d == DType::BF16 ? 0x7fc07fc0u : 0x7e007e00u;
}

// One conv's device buffers, its inputs uploaded and its output poisoned.
struct ConvBuffers {
  HostTensor x, w;
  cuda::DeviceBuffer dx, dw, dy, workspace;
  ConvBuffers(const LibraryConvDesc& d, size_t workspace_bytes, std::mt19937_64& rng)
      : x(random_tensor(d.n, d.c_in, volume(d.in), d.channels_last, d.dtype, rng)),
        w(random_tensor(d.c_out, d.c_in, volume(d.kernel), false, d.dtype, rng)),
        dx(x.bytes.size()),
        dw(w.bytes.size()),
        // Rounded up to whole 4-byte words, so that fill_u32 poisons every element.
        dy((static_cast<size_t>(d.n * d.c_out * volume(d.out) * dtype_info(d.dtype).bytes) + 3) / 4 * 4),
        workspace(workspace_bytes) {
    dx.upload(x.bytes.data(), x.bytes.size());
    dw.upload(w.bytes.data(), w.bytes.size());
    dy.fill_u32(nan_word(d.dtype));
  }
};

// "" when every element of the device output is within tolerance of the reference.
std::string compare(const LibraryConvDesc& d, const ConvBuffers& b, const std::vector<double>& ref) {
  std::vector<uint8_t> bytes(b.dy.bytes());
  b.dy.download(bytes.data(), bytes.size());
  const int64_t so = volume(d.out);
  double sum_sq = 0;
  for (double r : ref) sum_sq += r * r;
  const double rms = std::sqrt(sum_sq / static_cast<double>(ref.size()));
  if (!(rms > 0)) return "the reference is all zeros";
  const double rtol = rtol_of(d);
  double worst = 0;
  int64_t bad = 0, first_bad = -1;
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t c = 0; c < d.c_out; ++c)
      for (int64_t s = 0; s < so; ++s) {
        const double r = ref[static_cast<size_t>((n * d.c_out + c) * so + s)];
        const double got = load(bytes, offset(n, c, s, d.c_out, so, d.channels_last), d.dtype);
        const double ratio = std::fabs(got - r) / (rtol * (rms + std::fabs(r)));
        if (!(ratio <= 1)) {  // NaN (the poison, unwritten) fails too
          if (first_bad < 0) first_bad = (n * d.c_out + c) * so + s;
          ++bad;
        }
        if (!(ratio <= worst)) worst = ratio;
      }
  if (bad == 0) return {};
  return fmt::format("{} of {} elements out of tolerance {} (worst {:.3g} x tolerance; first at logical index {})", bad,
                     ref.size(), rtol, worst, first_bad);
}

class GpuCudnnConv : public ::testing::TestWithParam<Case> {};

TEST_P(GpuCudnnConv, MatchesAFloat64Reference) {
  REQUIRE_CUDNN();
  const LibraryConvDesc d = desc_of(GetParam());
  const uint64_t seed = std::hash<std::string>{}(GetParam().name);
  SCOPED_TRACE("repro: case " + std::string(GetParam().name) + ", " + d.key() + ", seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const cuda::CudnnConv conv(d);
  EXPECT_EQ(conv.engine().rfind("cudnn 9.", 0), 0u) << conv.engine();
  ConvBuffers b(d, conv.workspace_bytes(), rng);
  conv.run(b.dx.ptr(), b.dw.ptr(), b.dy.ptr(), b.workspace.ptr(), nullptr);
  cuda::synchronize();
  const std::string error = compare(d, b, reference(d, b.x.values, b.w.values));
  EXPECT_TRUE(error.empty()) << error << "\nengine: " << conv.engine();
}

INSTANTIATE_TEST_SUITE_P(Cases, GpuCudnnConv, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

TEST(GpuCudnnConvPlans, OneConvSharesItsPlanAndAnotherDoesNot) {
  REQUIRE_CUDNN();
  const LibraryConvDesc d = desc_of(kCases[0]);
  const cuda::CudnnConv a(d), b(d);
  EXPECT_EQ(&a.engine(), &b.engine()) << "two executors of one conv built two plans";
  LibraryConvDesc other = d;
  other.allow_tf32 = !d.allow_tf32;
  const cuda::CudnnConv c(other);
  EXPECT_NE(&a.engine(), &c.engine()) << "a conv with other numerics reused a plan";
}

TEST(GpuCudnnConvPlans, OneConvRunsFromSeveralThreadsAtOnce) {
  REQUIRE_CUDNN();
  const LibraryConvDesc d = desc_of(kCases[4]);  // bf16 2-D
  const cuda::CudnnConv conv(d);
  constexpr int kThreads = 4, kRuns = 8;
  std::vector<std::unique_ptr<ConvBuffers>> buffers;
  std::vector<std::vector<double>> refs;
  for (int t = 0; t < kThreads; ++t) {
    std::mt19937_64 rng(100 + t);
    buffers.push_back(std::make_unique<ConvBuffers>(d, conv.workspace_bytes(), rng));
    refs.push_back(reference(d, buffers.back()->x.values, buffers.back()->w.values));
  }
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      try {
        cuda::use_device();  // this thread's context, as a framework's worker thread has it
        CUstream stream = nullptr;
        FB_CU(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
        const ConvBuffers& b = *buffers[t];
        for (int r = 0; r < kRuns; ++r) conv.run(b.dx.ptr(), b.dw.ptr(), b.dy.ptr(), b.workspace.ptr(), stream);
        FB_CU(cuStreamSynchronize(stream));
        FB_CU(cuStreamDestroy(stream));
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(errors[t], "") << "thread " << t;
    if (errors[t].empty()) {
      const std::string error = compare(d, *buffers[t], refs[t]);
      EXPECT_TRUE(error.empty()) << "thread " << t << ": " << error;
    }
  }
}

}  // namespace
}  // namespace fbgpu
