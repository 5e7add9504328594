// The cuDNN conv's parts that need no GPU: its description's cache key, the tensors cuDNN is told
// of (layouts, 1-D as 2-D), loading libcudnn (a missing file, a library that is not cuDNN, the
// FUSEBLOCK_CUDNN_LIBRARY override) and, where cuDNN cannot run, a UserError carrying the reason
// instead of a crash. tests/gpu/test_gpu_cudnn_conv.cpp runs convs on the GPU.
#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "cuda/runtime/cudnn_conv.hpp"
#include "cuda/runtime/cudnn_conv_plan.hpp"
#include "cuda/runtime/cudnn_library.hpp"
#include "user_error_of.hpp"

namespace fb = fuseblock;
namespace fbc = fuseblock::cuda;

namespace {

using Sizes = std::array<int64_t, 3>;

// n = 2; stride and dilation 1 unless given.
fbc::LibraryConvDesc desc(int dims, int64_t c_in, int64_t c_out, Sizes in, Sizes kernel, Sizes padding, Sizes out,
                          Sizes stride = {1, 1, 1}, Sizes dilation = {1, 1, 1}) {
  return {.dims = dims,
          .n = 2,
          .c_in = c_in,
          .c_out = c_out,
          .in = in,
          .out = out,
          .kernel = kernel,
          .stride = stride,
          .padding = padding,
          .dilation = dilation};
}

fbc::LibraryConvDesc conv2d() { return desc(2, 3, 5, {7, 9, 1}, {3, 3, 1}, {1, 1, 0}, {7, 9, 1}); }

TEST(CudnnConvDesc, KeyDistinguishesEveryField) {
  using Change = std::function<void(fbc::LibraryConvDesc&)>;
  std::vector<Change> changes = {
      [](auto& d) { d.dims = 3; },
      [](auto& d) { d.n = 3; },
      [](auto& d) { d.c_in = 4; },
      [](auto& d) { d.c_out = 6; },
      [](auto& d) { d.dtype = fb::DType::BF16; },
      [](auto& d) { d.dtype = fb::DType::F16; },
      [](auto& d) { d.allow_tf32 = false; },
      [](auto& d) { d.channels_last = true; },
  };
  // Each entry of each array, the unused third one included.
  for (auto member : {&fbc::LibraryConvDesc::in, &fbc::LibraryConvDesc::out, &fbc::LibraryConvDesc::kernel,
                      &fbc::LibraryConvDesc::stride, &fbc::LibraryConvDesc::padding, &fbc::LibraryConvDesc::dilation})
    for (int i = 0; i < 3; ++i) changes.push_back([member, i](auto& d) { (d.*member)[i] += 1; });
  const std::string base = conv2d().key();
  std::set<std::string> keys = {base};
  for (const Change& change : changes) {
    fbc::LibraryConvDesc d = conv2d();
    change(d);
    EXPECT_TRUE(keys.insert(d.key()).second) << "a changed field gives a key already seen: " << d.key();
  }
}

TEST(CudnnConvDesc, TensorsInBothLayoutsAnd1dAs2d) {
  fbc::LibraryConvDesc d = conv2d();
  fbc::CudnnConvTensors t = fbc::cudnn_conv_tensors(d);
  EXPECT_EQ(t.x_dim, (std::vector<int64_t>{2, 3, 7, 9}));
  EXPECT_EQ(t.x_stride, (std::vector<int64_t>{189, 63, 9, 1}));
  EXPECT_EQ(t.w_dim, (std::vector<int64_t>{5, 3, 3, 3}));
  EXPECT_EQ(t.w_stride, (std::vector<int64_t>{27, 9, 3, 1}));
  EXPECT_EQ(t.y_stride, (std::vector<int64_t>{315, 63, 9, 1}));
  EXPECT_EQ(t.padding, (std::vector<int64_t>{1, 1}));

  d.channels_last = true;  // x, y as N, H, W, C; w stays [C_out, C_in, kh, kw]
  t = fbc::cudnn_conv_tensors(d);
  EXPECT_EQ(t.x_stride, (std::vector<int64_t>{189, 1, 27, 3}));
  EXPECT_EQ(t.y_stride, (std::vector<int64_t>{315, 1, 45, 5}));
  EXPECT_EQ(t.w_stride, (std::vector<int64_t>{27, 9, 3, 1}));

  // conv1d, stride 2, dilation 3, channels-last
  fbc::LibraryConvDesc c1 = desc(1, 4, 6, {20, 1, 1}, {3, 1, 1}, {2, 0, 0}, {9, 1, 1}, {2, 1, 1}, {3, 1, 1});
  c1.channels_last = true;
  t = fbc::cudnn_conv_tensors(c1);
  EXPECT_EQ(t.x_dim, (std::vector<int64_t>{2, 4, 1, 20}));
  EXPECT_EQ(t.x_stride, (std::vector<int64_t>{80, 1, 80, 4}));
  EXPECT_EQ(t.w_dim, (std::vector<int64_t>{6, 4, 1, 3}));
  EXPECT_EQ(t.y_dim, (std::vector<int64_t>{2, 6, 1, 9}));
  EXPECT_EQ(t.stride, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(t.padding, (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(t.dilation, (std::vector<int64_t>{1, 3}));

  fbc::LibraryConvDesc c3 = desc(3, 3, 5, {4, 5, 6}, {1, 1, 1}, {0, 0, 0}, {4, 5, 6});  // keeps its rank
  c3.channels_last = true;
  t = fbc::cudnn_conv_tensors(c3);
  EXPECT_EQ(t.x_dim, (std::vector<int64_t>{2, 3, 4, 5, 6}));
  EXPECT_EQ(t.x_stride, (std::vector<int64_t>{360, 1, 90, 18, 3}));
}

TEST(CudnnLibrary, AMissingFileSaysWhatWasTriedAndHowToInstall) {
  std::string why;
  const fbc::CudnnLibrary lib = fbc::load_cudnn_library({"/nonexistent/libcudnn.so.9"}, &why);
  EXPECT_EQ(lib.handle, nullptr);
  EXPECT_NE(why.find("/nonexistent/libcudnn.so.9"), std::string::npos) << why;
  EXPECT_NE(why.find("nvidia-cudnn-cu12"), std::string::npos) << why;
  EXPECT_NE(why.find("LD_LIBRARY_PATH"), std::string::npos) << why;
  EXPECT_NE(why.find("FUSEBLOCK_CUDNN_LIBRARY"), std::string::npos) << why;
}

TEST(CudnnLibrary, ALibraryThatIsNotCudnnIsRefused) {
  std::string why;
  const fbc::CudnnLibrary lib = fbc::load_cudnn_library({"libm.so.6"}, &why);
  EXPECT_EQ(lib.handle, nullptr);
  EXPECT_NE(why.find("libm.so.6: not cuDNN"), std::string::npos) << why;
}

TEST(CudnnLibrary, TheEnvironmentsFileIsTheOnlyCandidate) {
  const char* before = std::getenv("FUSEBLOCK_CUDNN_LIBRARY");
  const std::string saved = before ? before : "";
  ASSERT_EQ(setenv("FUSEBLOCK_CUDNN_LIBRARY", "/opt/x/libcudnn.so.9", 1), 0);
  EXPECT_EQ(fbc::cudnn_library_candidates(), std::vector<std::string>{"/opt/x/libcudnn.so.9"});
  ASSERT_EQ(unsetenv("FUSEBLOCK_CUDNN_LIBRARY"), 0);
  const std::vector<std::string> found = fbc::cudnn_library_candidates();
  if (before) setenv("FUSEBLOCK_CUDNN_LIBRARY", saved.c_str(), 1);  // as the run had it
  ASSERT_GE(found.size(), 2u);
  EXPECT_EQ(found.front(), "libcudnn.so.9");  // the one a framework already loaded, or the loader's
}

TEST(CudnnLibrary, VersionStrings) {
  EXPECT_EQ(fbc::cudnn_version_string(91900), "9.19.0");
  EXPECT_EQ(fbc::cudnn_version_string(90102), "9.1.2");
  EXPECT_EQ(fbc::cudnn_version_string(8907), "8.9.7");
}

TEST(CudnnLibrary, WhereItLoadsItIsCudnn9) {
  std::string why;
  const fbc::CudnnLibrary* lib = fbc::cudnn_library(&why);
  if (!lib) GTEST_SKIP() << "no cuDNN 9 on this machine: " << why;
  EXPECT_EQ(lib->version / 10000, 9u);
  EXPECT_NE(lib->path.find("libcudnn"), std::string::npos) << lib->path;
}

TEST(CudnnConv, WhereCudnnCannotRunTheConstructorThrowsTheReason) {
  const std::optional<std::string> why = fbc::cudnn_unavailable();
  if (!why) GTEST_SKIP() << "cuDNN can run here (tests/gpu/test_gpu_cudnn_conv.cpp covers it)";
  EXPECT_FALSE(why->empty());
  EXPECT_EQ(fbc::cudnn_unavailable(), why) << "the probe is not remembered";
  const fb::UserError e = user_error_of([] { fbc::CudnnConv conv(conv2d()); }, conv2d().key());
  EXPECT_NE(std::string(e.what()).find(*why), std::string::npos) << e.what();
}

}  // namespace
