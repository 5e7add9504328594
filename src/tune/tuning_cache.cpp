#include "tune/tuning_cache.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cuda/runtime/cubin_cache.hpp"
#include "fuseblock/error.hpp"

namespace fuseblock::tune {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kFormatVersion = 1;

// Holds an exclusive flock on "<path>.lock" for its lifetime.
class FileLock {
 public:
  explicit FileLock(const std::string& path) {
    fd_ = ::open((path + ".lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~FileLock() {
    if (fd_ >= 0) ::flock(fd_, LOCK_UN), ::close(fd_);
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

json config_json(const Config& c) {
  json j = {{"warps", c.warps}, {"stages", c.stages}, {"rule", c.rule}};
  if (c.knobs == KnobSet::Conv)
    j["conv"] = {{"mma_mpw", c.conv.mma_mpw}, {"min_blocks", c.conv.min_blocks}, {"epilogue_unroll", c.conv.epilogue_unroll},
                 {"strategy", c.strategy}};
  if (c.knobs == KnobSet::Conv && c.conv.ig_bm > 0)
    j["conv"]["igemm"] = {c.conv.ig_bm, c.conv.ig_bn, c.conv.ig_wm, c.conv.ig_wn, c.conv.ig_blocks};
  return j;
}
Config config_from(const json& j) {
  Config c{j.at("warps").get<int>(), j.at("stages").get<int>(), j.value("rule", "")};
  if (j.contains("conv")) {  // entries written before conv knobs existed have none
    const json& k = j.at("conv");
    c.knobs = KnobSet::Conv;
    c.conv = {k.at("mma_mpw").get<int>(), k.at("min_blocks").get<int>(), k.at("epilogue_unroll").get<int>()};
    c.strategy = k.value("strategy", "");
    if (k.contains("igemm")) {  // store_once's igemm tile: [bm, bn, wm, wn, blocks]
      const json& t = k.at("igemm");
      c.conv.ig_bm = t.at(0).get<int>(), c.conv.ig_bn = t.at(1).get<int>(), c.conv.ig_wm = t.at(2).get<int>();
      c.conv.ig_wn = t.at(3).get<int>(), c.conv.ig_blocks = t.at(4).get<int>();
    }  // entries written before strategies existed: none (not used)
  }
  return c;
}

// The whole file, or an empty document when it is missing. A corrupt file is renamed to
// "<path>.corrupt" (kept for a look) and reported through `recovered`.
json read_document(const std::string& path, std::string* recovered) {
  std::ifstream f(path);
  if (!f) return json{{"version", kFormatVersion}, {"entries", json::object()}};
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    json doc = json::parse(ss.str());
    if (doc.value("version", 0) != kFormatVersion || !doc.contains("entries") || !doc["entries"].is_object())
      throw std::runtime_error("unknown format version");
    return doc;
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::rename(path, path + ".corrupt", ec);
    if (recovered) *recovered = fmt::format("{} was unreadable ({}); moved to {}.corrupt and rebuilt", path, e.what(), path);
    return json{{"version", kFormatVersion}, {"entries", json::object()}};
  }
}

}  // namespace

std::string TuningKey::str() const { return fmt::format("{} | driver {} | nvrtc {} | src {} | {}", device, driver, nvrtc, source_hash, shapes); }

TuningCache::TuningCache(std::string path) : path_(std::move(path)) {}

// Next to the cubins, by the one rule for the cache folder (an empty variable counts as unset).
std::string TuningCache::default_path() { return (fs::path(cuda::default_cache_dir()) / "tuning.json").string(); }

std::optional<TuningRecord> TuningCache::lookup(const TuningKey& key) const {
  std::error_code ec;
  fs::create_directories(fs::path(path_).parent_path(), ec);
  FileLock lock(path_);
  json doc = read_document(path_, &recovered_);
  auto it = doc["entries"].find(key.str());
  if (it == doc["entries"].end()) return std::nullopt;
  try {
    TuningRecord r;
    r.chosen = config_from(it->at("chosen"));
    for (const json& c : it->at("candidates")) r.candidates.push_back(config_from(c));
    for (const json& t : it->at("times_ms"))  // null: a rejected candidate (JSON has no infinity)
      r.times_ms.push_back(t.is_null() ? std::numeric_limits<double>::infinity() : t.get<double>());
    r.why = it->value("why", "");
    if (it->contains("notes")) r.notes = it->at("notes").get<std::vector<std::string>>();
    return r;
  } catch (const std::exception&) {
    return std::nullopt;  // a damaged entry is tuned again and overwritten
  }
}

void TuningCache::store(const TuningKey& key, const TuningRecord& rec) {
  std::error_code ec;
  fs::create_directories(fs::path(path_).parent_path(), ec);
  FileLock lock(path_);
  json doc = read_document(path_, &recovered_);
  json times = json::array();
  for (double t : rec.times_ms) times.push_back(std::isfinite(t) ? json(t) : json(nullptr));
  json cands = json::array();
  for (const Config& c : rec.candidates) cands.push_back(config_json(c));
  doc["entries"][key.str()] = {{"chosen", config_json(rec.chosen)}, {"candidates", cands}, {"times_ms", times}, {"why", rec.why}, {"notes", rec.notes}};
  const std::string tmp = fmt::format("{}.tmp.{}", path_, ::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << doc.dump(2) << "\n";
    out.flush();
    if (!out) throw UserError(fmt::format("cannot write the tuning cache {}", tmp), "set FUSEBLOCK_CACHE_DIR to a writable folder");
  }
  fs::rename(tmp, path_, ec);
  if (ec) throw UserError(fmt::format("cannot update the tuning cache {}: {}", path_, ec.message()), "set FUSEBLOCK_CACHE_DIR to a writable folder");
}

}  // namespace fuseblock::tune
