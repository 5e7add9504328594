// The tuning cache: one JSON file of decisions, so a second run of the same kernel on the same
// device does no tuning. Keyed by device, driver and NVRTC versions, the kernel's source hash and
// its shapes. Read-modify-write happens under an exclusive file lock and ends in an atomic
// rename, so two processes can fill it at once; a corrupt file is set aside and rebuilt.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "tune/tuning_rules.hpp"

namespace fuseblock::tune {

struct TuningKey {
  std::string device;       // "NVIDIA H100 80GB HBM3 (sm_90)"
  std::string driver;       // "13000"
  std::string nvrtc;        // "13.0"
  std::string source_hash;  // of the kernel's emitted source at the baseline configuration
  std::string shapes;       // "[128, 3, 16, 64, 64] -> [128, 16, 14, 62, 62]"
  std::string str() const;  // the JSON key
};

struct TuningRecord {
  Config chosen;
  std::vector<Config> candidates;
  std::vector<double> times_ms;
  std::string why;
  std::vector<std::string> notes;  // per candidate: its compiled metrics, as `tune` printed them
};

class TuningCache {
 public:
  // `path` defaults to tuning.json in the cubin cache folder (cuda::default_cache_dir()).
  explicit TuningCache(std::string path = default_path());
  static std::string default_path();
  const std::string& path() const { return path_; }

  std::optional<TuningRecord> lookup(const TuningKey& key) const;
  void store(const TuningKey& key, const TuningRecord& rec);
  // Set when the last read found the file unreadable and moved it aside (for a warning).
  const std::string& recovered_from() const { return recovered_; }

 private:
  std::string path_;
  mutable std::string recovered_;
};

}  // namespace fuseblock::tune
