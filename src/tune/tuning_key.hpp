// What a tuning decision is keyed by, and the runtime's look-up of one. A decision holds for one
// program (the baseline's emitted source: shapes, chain, precision and engine are all in it) on
// one kind of device with one driver and one NVRTC; any change there is a miss and the program
// runs at its baseline until `fuseblock tune` measures it again.
#pragma once
#include <optional>
#include <string>

#include "cuda/conv_geometry.hpp"
#include "cuda/select/select.hpp"
#include "fuseblock/plan.hpp"
#include "tune/tuning_cache.hpp"
#include "tune/tuning_rules.hpp"

namespace fuseblock::tune {

struct DeviceIdentity {
  std::string device;  // "NVIDIA H100 80GB HBM3 (sm_90)"
  std::string driver;  // cuDriverGetVersion: "13000"
  std::string nvrtc;   // "13.0"
};

// The current device's identity (needs a GPU).
DeviceIdentity current_device_identity();

// FNV-1a 64 of the text, as 16 hex digits.
std::string source_hash(const std::string& source);

TuningKey tuning_key(const DeviceIdentity& id, const std::string& baseline_source, const Pipeline& p);

cuda::ConvTuning to_conv_tuning(const ConvKnobs& k);
ConvKnobs to_knobs(const cuda::ConvTuning& t);

// The strategy and config `fuseblock tune` chose for the plan whose default program is
// `baseline_source`, on the current device, from the cache at `cache_path`; nullopt on a miss, for
// an entry that is not a conv decision or holds values no strategy takes, and on any error (a
// damaged or unreadable cache never stops a run: the plan then runs the selection's default).
std::optional<cuda::TunedChoice> cached_choice(const Plan& plan, const std::string& baseline_source,
                                               const std::string& cache_path = TuningCache::default_path());

}  // namespace fuseblock::tune
