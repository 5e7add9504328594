#include "tune/tuning_key.hpp"

#include <cstdint>
#include <filesystem>

#include <fmt/format.h>

#include "cuda/runtime/device_context.hpp"
#include "cuda/runtime/driver_api.hpp"
#include "cuda/runtime/nvrtc_compile.hpp"

namespace fuseblock::tune {

DeviceIdentity current_device_identity() {
  const cuda::DeviceInfo& dev = cuda::use_device();
  int driver = 0;
  FB_CU(cuDriverGetVersion(&driver));
  return {fmt::format("{} ({})", dev.name, dev.arch()), std::to_string(driver), cuda::nvrtc_version_string()};
}

std::string source_hash(const std::string& source) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : source) h = (h ^ c) * 0x100000001b3ULL;
  return fmt::format("{:016x}", h);
}

TuningKey tuning_key(const DeviceIdentity& id, const std::string& baseline_source, const Pipeline& p) {
  return {id.device, id.driver, id.nvrtc, source_hash(baseline_source),
          shape_str(p.input_shape) + " -> " + shape_str(p.output_shape)};
}

cuda::ConvTuning to_conv_tuning(const ConvKnobs& k) {
  cuda::ConvTuning t;
  t.mma_mpw = k.mma_mpw;
  t.min_blocks = k.min_blocks;
  t.epilogue_unroll = k.epilogue_unroll;
  t.ig_bm = k.ig_bm, t.ig_bn = k.ig_bn, t.ig_wm = k.ig_wm, t.ig_wn = k.ig_wn, t.ig_blocks = k.ig_blocks;
  return t;
}

ConvKnobs to_knobs(const cuda::ConvTuning& t) {
  return {t.mma_mpw, t.min_blocks, t.epilogue_unroll, t.ig_bm, t.ig_bn, t.ig_wm, t.ig_wn, t.ig_blocks};
}

std::optional<cuda::TunedChoice> cached_choice(const Plan& plan, const std::string& baseline_source,
                                               const std::string& cache_path) {
  try {
    if (!std::filesystem::exists(cache_path)) return std::nullopt;  // a run never creates the cache
    const TuningKey key = tuning_key(current_device_identity(), baseline_source, plan.pipeline);
    const std::optional<TuningRecord> rec = TuningCache(cache_path).lookup(key);
    if (!rec || rec->chosen.knobs != KnobSet::Conv || !rec->chosen.conv.valid() || rec->chosen.strategy.empty())
      return std::nullopt;
    return cuda::TunedChoice{rec->chosen.strategy, to_conv_tuning(rec->chosen.conv)};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace fuseblock::tune
