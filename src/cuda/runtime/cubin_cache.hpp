// An on-disk cache of NVRTC output, so a plan compiles once per machine rather than once per
// process. The key hashes everything that decides the cubin: source, options, NVRTC version,
// architecture and kGeneratorVersion (bumped when emitted code changes meaning without changing
// its text, e.g. a launch contract). Each entry is written to a temporary file and renamed into
// place, so readers never see half an entry and two processes filling one key both succeed;
// an entry carries a header (magic, key, length, checksum) so a corrupt or truncated one is
// detected, treated as a miss and rebuilt.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "cuda/runtime/nvrtc_compile.hpp"

namespace fuseblock::cuda {

inline constexpr uint32_t kGeneratorVersion = 1;

// $FUSEBLOCK_CACHE_DIR, else $XDG_CACHE_HOME/fuseblock, else ~/.cache/fuseblock.
std::string default_cache_dir();

// 128-bit key as 32 hex digits.
std::string cache_key(const CompileRequest& req, const std::string& nvrtc_version, uint32_t generator_version);

class CubinCache {
 public:
  explicit CubinCache(std::string dir = default_cache_dir());
  const std::string& dir() const { return dir_; }
  std::string entry_path(const std::string& key) const;
  // The stored program, or nullopt when absent, corrupt, truncated or written for another key.
  std::optional<CompiledProgram> load(const std::string& key) const;
  // Writes atomically; returns false (and leaves no partial file) when the folder is not writable.
  bool store(const std::string& key, const CompiledProgram& prog) const;

 private:
  std::string dir_;
};

struct CacheStats {
  bool hit = false;
  std::string key;
};
// Compiles through the cache (cache may be null: always compile).
CompiledProgram compile_cached(const CompileRequest& req, const CubinCache* cache,
                               uint32_t generator_version = kGeneratorVersion, CacheStats* stats = nullptr);

}  // namespace fuseblock::cuda
