#include "measure/device_run.hpp"

#include <cstring>

#include "cuda/codegen/emit_epilogue.hpp"
#include "cuda/runtime/driver_api.hpp"
#include "fuseblock/random.hpp"

namespace fuseblock::measure {

namespace {

// What a measured run adds per (sample, channel) where the block takes that input: uniform values
// in [-1, 1) of the storage type (a timing and tune's config-to-config comparison need real
// values, not which ones).
std::optional<Tensor> measured_channel_add(const Plan& plan) {
  if (!plan.pipeline.channel_add()) return std::nullopt;
  Tensor add = uniform_tensor(channel_add_shape(plan), 7, -1.0f, 1.0f);
  add.round_to(plan.pipeline.types.storage);
  return add;
}

}  // namespace

DeviceRun::DeviceRun(const Plan& plan, const Params& params, const Tensor& x, const Tensor* channel_add)
    : channel_add_(channel_add ? std::optional<Tensor>(*channel_add) : measured_channel_add(plan)),
      block_(plan, nullptr, params, x, 0, channel_add_ ? &*channel_add_ : nullptr) {
  args_.seed = cuda::drawn_dropout(plan.pipeline).seed;  // the one dropout that draws, wherever it stands
  args_.offset = cuda::drawn_dropout(plan.pipeline).offset;
}

void DeviceRun::launch(const cuda::Executor& ex, const std::function<void(size_t)>& before_each) {
  ex.launch(block_.tensors(ex.scratch_bytes()), args_, nullptr, before_each);
}

void DeviceRun::poison_output() {
  const cuda::DeviceBuffer& y = block_.output();
  if (!y.bytes()) return;
  switch (block_.storage()) {
    case DType::F32:
      FB_CU(cuMemsetD32Async(y.ptr(), kPoisonBits, y.bytes() / 4, nullptr));
      break;
    case DType::BF16:
      FB_CU(cuMemsetD16Async(y.ptr(), kPoisonBitsBf16, y.bytes() / 2, nullptr));
      break;
    case DType::F16:
      FB_CU(cuMemsetD16Async(y.ptr(), kPoisonBitsF16, y.bytes() / 2, nullptr));
      break;
  }
}

std::vector<float> DeviceRun::download_output(int64_t* unwritten) const {
  cuda::synchronize();
  const cuda::DeviceBuffer& y = block_.output();
  std::vector<uint8_t> bytes(y.bytes());
  if (!bytes.empty()) y.download(bytes.data(), bytes.size());
  if (unwritten) *unwritten = count_poisoned(bytes, block_.storage());
  const DType d = block_.storage();
  const size_t n = bytes.size() / static_cast<size_t>(dtype_info(d).bytes);
  std::vector<float> out(n);
  if (d == DType::F32) {
    if (n) std::memcpy(out.data(), bytes.data(), n * 4);
    return out;
  }
  for (size_t i = 0; i < n; ++i) {
    uint16_t b;
    std::memcpy(&b, bytes.data() + 2 * i, 2);
    out[i] = d == DType::BF16 ? bf16_bits_to_float(b) : f16_bits_to_float(b);
  }
  return out;
}

namespace {

// Elements of `bytes`, read as Word, equal to `poison`.
template <class Word>
int64_t count_words(const std::vector<uint8_t>& bytes, Word poison) {
  int64_t n = 0;
  const int64_t size = static_cast<int64_t>(bytes.size() / sizeof(Word));
#pragma omp parallel for reduction(+ : n)
  for (int64_t i = 0; i < size; ++i) {
    Word w;
    std::memcpy(&w, bytes.data() + static_cast<size_t>(i) * sizeof(Word), sizeof(Word));
    n += w == poison;
  }
  return n;
}

}  // namespace

int64_t count_poisoned(const std::vector<uint8_t>& bytes, DType storage) {
  switch (storage) {
    case DType::F32:
      return count_words<uint32_t>(bytes, kPoisonBits);
    case DType::BF16:
      return count_words<uint16_t>(bytes, kPoisonBitsBf16);
    case DType::F16:
      return count_words<uint16_t>(bytes, kPoisonBitsF16);
  }
  return 0;
}

}  // namespace fuseblock::measure
