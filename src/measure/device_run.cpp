#include "measure/device_run.hpp"

#include <cstring>

#include "cuda/runtime/driver_api.hpp"

namespace fuseblock::measure {

DeviceRun::DeviceRun(const Plan& plan, const Params& params, const Tensor& x)
    : x_(cuda::to_device(x.vec())),
      y_(static_cast<size_t>(numel(plan.pipeline.output_shape)) * sizeof(float)),
      w_(cuda::to_device(params.conv_weight.vec())),
      b_(cuda::to_device(params.conv_bias.vec())),
      gamma_(cuda::to_device(params.norm_weight.vec())),
      beta_(cuda::to_device(params.norm_bias.vec())) {
  args_.seed = plan.pipeline.dropout.seed;
  args_.offset = plan.pipeline.dropout.offset;
}

void DeviceRun::launch(const cuda::Executor& ex, const std::function<void(size_t)>& before_each) {
  if (scratch_.bytes() < ex.scratch_bytes()) scratch_ = cuda::DeviceBuffer(ex.scratch_bytes());  // tunings differ
  const cuda::DeviceTensors t{x_.ptr(), y_.ptr(), w_.ptr(), b_.ptr(), gamma_.ptr(), beta_.ptr()};
  ex.launch(t, scratch_.ptr(), args_, nullptr, before_each);
}

void DeviceRun::poison_output() {
  if (y_.bytes()) FB_CU(cuMemsetD32Async(y_.ptr(), kPoisonBits, y_.bytes() / 4, nullptr));
}

std::vector<float> DeviceRun::download_output() const {
  cuda::synchronize();
  std::vector<float> y(y_.bytes() / sizeof(float));
  y_.download(y.data(), y_.bytes());
  return y;
}

int64_t count_poisoned(const std::vector<float>& y) {
  int64_t n = 0;
  const int64_t size = static_cast<int64_t>(y.size());
#pragma omp parallel for reduction(+ : n)
  for (int64_t i = 0; i < size; ++i) {
    uint32_t b;
    std::memcpy(&b, &y[static_cast<size_t>(i)], 4);
    n += b == kPoisonBits;
  }
  return n;
}

}  // namespace fuseblock::measure
