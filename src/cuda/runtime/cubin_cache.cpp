// The on-disk NVRTC cache (cubin_cache.hpp).
#include "cuda/runtime/cubin_cache.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace fuseblock::cuda {
namespace {

constexpr char kMagic[8] = {'F', 'B', 'C', 'U', 'B', 'I', 'N', '1'};

// FNV-1a, 128-bit: a cache key only has to make accidental collisions negligible.
struct Hash128 {
  unsigned __int128 h = (static_cast<unsigned __int128>(0x6c62272e07bb0142ULL) << 64) | 0x62b821756295c58dULL;
  void add(const void* data, size_t n) {
    const unsigned __int128 prime = (static_cast<unsigned __int128>(1) << 88) | 0x13b;
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
      h ^= p[i];
      h *= prime;
    }
  }
  // Length-prefixed, so ("ab","c") and ("a","bc") differ.
  void add_field(const std::string& s) {
    uint64_t n = s.size();
    add(&n, sizeof n);
    add(s.data(), s.size());
  }
  std::string hex() const {
    char buf[33];
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h >> 64),
                  static_cast<unsigned long long>(h));
    return buf;
  }
};

uint64_t checksum64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

void put_u64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); }
void put_field(std::string& out, const std::string& s) {
  put_u64(out, s.size());
  out += s;
}

// Reads a length-prefixed field at *pos; false when it would run past the end.
bool get_field(const std::string& in, size_t* pos, std::string* out) {
  uint64_t n = 0;
  if (in.size() - *pos < sizeof n) return false;
  std::memcpy(&n, in.data() + *pos, sizeof n);
  *pos += sizeof n;
  if (in.size() - *pos < n) return false;
  out->assign(in.data() + *pos, n);
  *pos += n;
  return true;
}

}  // namespace

std::string default_cache_dir() {
  if (const char* d = std::getenv("FUSEBLOCK_CACHE_DIR"); d && *d) return d;
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return std::string(d) + "/fuseblock";
  if (const char* d = std::getenv("HOME"); d && *d) return std::string(d) + "/.cache/fuseblock";
  return "/tmp/fuseblock-cache";
}

std::string cache_key(const CompileRequest& req, const std::string& nvrtc_version, uint32_t generator_version) {
  Hash128 h;
  h.add_field(req.source);
  for (const auto& o : nvrtc_options(req)) h.add_field(o);
  h.add_field(nvrtc_version);
  h.add_field(req.arch);
  h.add_field(std::to_string(generator_version));
  return h.hex();
}

CubinCache::CubinCache(std::string dir) : dir_(std::move(dir)) {}

std::string CubinCache::entry_path(const std::string& key) const { return dir_ + "/" + key + ".fbcubin"; }

// Layout: magic[8] | key[32] | u64 payload length | u64 payload checksum | payload, where the
// payload is the length-prefixed fields arch, cubin, ptx, log.
std::optional<CompiledProgram> CubinCache::load(const std::string& key) const {
  std::ifstream f(entry_path(key), std::ios::binary);
  if (!f) return std::nullopt;
  std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t header = sizeof kMagic + 32 + 16;
  if (data.size() < header || std::memcmp(data.data(), kMagic, sizeof kMagic) != 0) return std::nullopt;
  if (data.compare(sizeof kMagic, 32, key) != 0) return std::nullopt;
  uint64_t len = 0, sum = 0;
  std::memcpy(&len, data.data() + sizeof kMagic + 32, 8);
  std::memcpy(&sum, data.data() + sizeof kMagic + 40, 8);
  if (data.size() - header != len) return std::nullopt;
  std::string payload = data.substr(header);
  if (checksum64(payload) != sum) return std::nullopt;
  CompiledProgram p;
  size_t pos = 0;
  if (!get_field(payload, &pos, &p.arch) || !get_field(payload, &pos, &p.cubin) ||
      !get_field(payload, &pos, &p.ptx) || !get_field(payload, &pos, &p.log) || pos != payload.size())
    return std::nullopt;
  p.kernels = parse_ptxas_report(p.log);
  complete_from_cubin(p);
  return p;
}

bool CubinCache::store(const std::string& key, const CompiledProgram& prog) const {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  std::string payload;
  put_field(payload, prog.arch);
  put_field(payload, prog.cubin);
  put_field(payload, prog.ptx);
  put_field(payload, prog.log);
  std::string data(kMagic, sizeof kMagic);
  data += key;
  put_u64(data, payload.size());
  put_u64(data, checksum64(payload));
  data += payload;
  // A name unique to this process and thread, so concurrent writers never share a temp file.
  static std::atomic<uint64_t> counter{0};
  // std::to_string, not an ostringstream: a stream formats numbers through the global locale,
  // which a host program (PyTorch's process was seen to) may have set to facets this library
  // cannot use safely.
  const std::string tmp_path = entry_path(key) + ".tmp." + std::to_string(getpid()) + "." +
                               std::to_string(std::hash<std::thread::id>()(std::this_thread::get_id())) + "." +
                               std::to_string(counter++);
  {
    std::ofstream f(tmp_path, std::ios::binary | std::ios::trunc);
    if (!f) return false;
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    f.flush();
    if (!f) {
      f.close();
      fs::remove(tmp_path, ec);
      return false;
    }
  }
  fs::rename(tmp_path, entry_path(key), ec);
  if (ec) {
    fs::remove(tmp_path, ec);
    return false;
  }
  return true;
}

CompiledProgram compile_cached(const CompileRequest& req, const CubinCache* cache, uint32_t generator_version,
                               CacheStats* stats) {
  std::string key = cache_key(req, nvrtc_version_string(), generator_version);
  if (stats) stats->key = key;
  if (cache) {
    if (auto hit = cache->load(key); hit && hit->arch == req.arch) {
      if (stats) stats->hit = true;
      return *hit;
    }
  }
  CompiledProgram p = compile_program(req);
  if (cache) cache->store(key, p);
  return p;
}

}  // namespace fuseblock::cuda
