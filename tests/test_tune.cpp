// The tuner's rules (the seed's optimization stage) and its cache, without a GPU.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "cuda/runtime/cubin_cache.hpp"
#include "fuseblock/plan.hpp"
#include "tune/tuner.hpp"
#include "tune/tuning_cache.hpp"
#include "tune/tuning_key.hpp"
#include "tune/tuning_rules.hpp"

using namespace fuseblock::tune;
using fuseblock::Pipeline;
using fuseblock::Plan;

namespace {
std::vector<std::pair<int, int>> shapes_of(const std::vector<Config>& cs) {
  std::vector<std::pair<int, int>> v;
  for (const Config& c : cs) v.push_back({c.warps, c.stages});
  return v;
}
using WS = std::vector<std::pair<int, int>>;
}  // namespace

TEST(TuningRules, CandidatesPerRule) {
  struct Case { KernelTraits k; WS expected; };
  const std::vector<Case> cases = {
      {{64, 0, false, 1, true}, WS{{4, 2}, {8, 2}, {8, 3}, {4, 3}}},    // low pressure, pipelined
      {{64, 0, false, 1, false}, WS{{4, 2}, {8, 2}}},                   // low pressure, no pipeline
      {{160, 0, false, 1, true}, WS{{4, 2}}},                           // high pressure
      {{80, 0, true, 1, true}, WS{{4, 2}}},                             // occupancy limited by registers
      {{80, 16, false, 1, true}, WS{{4, 2}}},                           // spills count as high pressure
      {{64, 0, false, 4, true}, WS{{4, 2}, {8, 2}}},                    // 3+ inputs: 2 stages
      {{110, 0, false, 1, true}, WS{{4, 2}, {8, 2}}},                   // moderate
  };
  for (const Case& c : cases) {
    auto got = candidate_configs(c.k);
    EXPECT_EQ(shapes_of(got), c.expected) << "registers " << c.k.registers << " inputs " << c.k.distinct_input_loads;
    EXPECT_LE(got.size(), static_cast<size_t>(kMaxConfigs));
    EXPECT_TRUE(got.front().is_baseline());
    for (const Config& cfg : got) EXPECT_FALSE(cfg.rule.empty());
  }
}

TEST(TuningRules, KeepsWinnerOnlyAboveTwoPercent) {
  std::vector<Config> cs = {{4, 2, "b"}, {8, 2, "x"}, {8, 3, "y"}};
  std::string why;
  EXPECT_EQ(pick_config(cs, {1.00, 0.99, 0.985}, &why), 0u) << why;  // 1.5%: baseline
  EXPECT_NE(why.find("< 2%"), std::string::npos);
  EXPECT_EQ(pick_config(cs, {1.00, 0.97, 0.99}, &why), 1u) << why;   // 3%: kept
  EXPECT_EQ(pick_config(cs, {1.00, 1.10, 1.20}, &why), 0u) << why;
}

class TuningCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) / ("fb_tune_" + std::to_string(::getpid()) + "_" +
                                                          ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  std::string path() const { return (dir_ / "tuning.json").string(); }
  std::filesystem::path dir_;
};

TEST_F(TuningCacheTest, StoresAndFinds) {
  TuningCache cache(path());
  TuningKey key{"dev", "1", "13.0", "abc", "[1] -> [1]"};
  EXPECT_FALSE(cache.lookup(key).has_value());
  TuningRecord rec{{8, 2, "r"}, {{4, 2, "b"}, {8, 2, "r"}}, {1.0, 0.9}, "kept"};
  cache.store(key, rec);
  auto got = TuningCache(path()).lookup(key);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->chosen.warps, 8);
  EXPECT_EQ(got->times_ms, (std::vector<double>{1.0, 0.9}));
  TuningKey other = key;
  other.source_hash = "abd";
  EXPECT_FALSE(cache.lookup(other).has_value());
}

TEST_F(TuningCacheTest, CorruptFileIsSetAsideAndRebuilt) {
  { std::ofstream(path()) << "{ not json"; }
  TuningCache cache(path());
  TuningKey key{"dev", "1", "13.0", "abc", "s"};
  EXPECT_FALSE(cache.lookup(key).has_value());
  EXPECT_NE(cache.recovered_from().find("unreadable"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(path() + ".corrupt"));
  cache.store(key, {{4, 2, "b"}, {{4, 2, "b"}}, {1.0}, "kept"});
  EXPECT_TRUE(TuningCache(path()).lookup(key).has_value());
}

TEST_F(TuningCacheTest, TwoProcessesFillingAtOnceLoseNothing) {
  const int per_process = 20;
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  const int who = child == 0 ? 1 : 0;
  {
    TuningCache cache(path());
    for (int i = 0; i < per_process; ++i)
      cache.store({"dev", "1", "13.0", "k" + std::to_string(who) + "_" + std::to_string(i), "s"}, {{4, 2, "b"}, {{4, 2, "b"}}, {1.0}, "kept"});
  }
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  TuningCache cache(path());
  for (int w = 0; w < 2; ++w)
    for (int i = 0; i < per_process; ++i)
      EXPECT_TRUE(cache.lookup({"dev", "1", "13.0", "k" + std::to_string(w) + "_" + std::to_string(i), "s"}).has_value()) << w << " " << i;
}

// ---- the conv kernels' knobs (ConvTuning): the seed's rules mapped as tuning_rules.hpp says ----

namespace {
using Knobs = std::vector<std::tuple<int, int, int>>;  // (mpw, min_blocks, epilogue_unroll)
Knobs knobs_of(const std::vector<Config>& cs) {
  Knobs v;
  for (const Config& c : cs) v.emplace_back(c.conv.mma_mpw, c.conv.min_blocks, c.conv.epilogue_unroll);
  return v;
}
KernelTraits conv(int regs, int spill, bool reg_limited, int inputs, bool tile_width) {
  KernelTraits k{regs, spill, reg_limited, inputs, true};
  k.knobs = KnobSet::Conv;
  k.has_tile_width = tile_width;
  return k;
}
}  // namespace

TEST(TuningRules, ConvKnobsPerRule) {
  struct Case {
    const char* what;
    KernelTraits k;
    Knobs expected;
  };
  const Knobs base{{4, 2, 1}};
  const std::vector<Case> cases = {
      {"low pressure, MMA: unroll 2, narrower tile, both", conv(70, 0, false, 2, true), Knobs{{4, 2, 1}, {4, 2, 2}, {2, 2, 1}, {2, 2, 2}}},
      {"low pressure, FMA (no tile width knob): unroll 2 only", conv(70, 0, false, 2, false), Knobs{{4, 2, 1}, {4, 2, 2}}},
      {"moderate pressure, MMA: the narrower tile", conv(110, 0, false, 2, true), Knobs{{4, 2, 1}, {2, 2, 1}}},
      {"moderate pressure, FMA: nothing to try", conv(110, 0, false, 2, false), base},
      {"3+ inputs, low pressure: no unroll, one challenger", conv(70, 0, false, 6, true), Knobs{{4, 2, 1}, {2, 2, 1}}},
      {"3+ inputs, FMA: baseline", conv(70, 0, false, 3, false), base},
      {"> 128 registers: baseline", conv(168, 0, false, 2, true), base},
      {"occupancy limited by registers: baseline", conv(123, 0, true, 2, true), base},
      {"spills: baseline", conv(80, 8, false, 2, true), base},
  };
  for (const Case& c : cases) {
    const std::vector<Config> got = candidate_configs(c.k);
    EXPECT_EQ(knobs_of(got), c.expected) << c.what;
    EXPECT_LE(got.size(), static_cast<size_t>(kMaxConfigs)) << c.what;
    ASSERT_FALSE(got.empty());
    EXPECT_TRUE(got.front().is_baseline()) << c.what;
    for (const Config& cfg : got) {
      EXPECT_FALSE(cfg.rule.empty()) << c.what;
      EXPECT_EQ(cfg.knobs, KnobSet::Conv) << c.what;
      EXPECT_TRUE(cfg.conv.valid()) << c.what;
      EXPECT_EQ(cfg.conv.min_blocks, 2) << "no rule proposes 1 block/SM: " << c.what;
      if (c.k.distinct_input_loads >= 3) EXPECT_EQ(cfg.conv.epilogue_unroll, 1) << "no deeper pipelining: " << c.what;
    }
  }
  // The baseline's rule names the high-pressure reason, so `tune` shows why nothing else runs.
  EXPECT_NE(candidate_configs(conv(123, 0, true, 2, true))[0].rule.find("occupancy limited by registers"), std::string::npos);
  EXPECT_NE(candidate_configs(conv(80, 8, false, 2, true))[0].rule.find("8 B spilled"), std::string::npos);
}

TEST(TuningRules, ConvConfigsDescribeTheirKnobs) {
  Config c{4, 2, "r", ConvKnobs{2, 1, 2}, KnobSet::Conv};
  EXPECT_EQ(c.describe(), "mpw 2, 1 block/SM, epilogue unroll 2");
  EXPECT_FALSE(c.is_baseline());
  EXPECT_TRUE((Config{4, 2, "b", ConvKnobs{}, KnobSet::Conv}).is_baseline());
  EXPECT_EQ((Config{8, 3, "x"}).describe(), "8 warps, 3 stages");
  EXPECT_FALSE((ConvKnobs{3, 2, 1}).valid());
  EXPECT_FALSE((ConvKnobs{4, 0, 1}).valid());
  EXPECT_FALSE((ConvKnobs{4, 2, 4}).valid());
}

TEST(TuningRules, RejectedCandidateNeverWins) {
  std::vector<Config> cs = {{4, 2, "b", {}, KnobSet::Conv}, {4, 2, "x", {2, 2, 1}, KnobSet::Conv}, {4, 2, "y", {4, 2, 2}, KnobSet::Conv}};
  std::string why;
  EXPECT_EQ(pick_config(cs, {1.0, INFINITY, 0.95}, &why), 2u) << why;
  EXPECT_NE(why.find("mpw 4, 2 blocks/SM, epilogue unroll 2 is 5.0% faster"), std::string::npos) << why;
  EXPECT_EQ(pick_config(cs, {1.0, INFINITY, INFINITY}, &why), 0u) << why;
  EXPECT_EQ(pick_config({cs[0]}, {1.0}, &why), 0u);
  EXPECT_EQ(why, "only the baseline was measured: kept");
}

TEST_F(TuningCacheTest, ConvKnobsNotesAndRejectedTimesRoundTrip) {
  TuningCache cache(path());
  TuningKey key{"NVIDIA H100 80GB HBM3 (sm_90)", "13000", "13.0", "0123456789abcdef", "[1, 2, 3] -> [1, 4, 1]"};
  const Config base{4, 2, "b", {}, KnobSet::Conv}, narrow{4, 2, "n", {2, 2, 1}, KnobSet::Conv};
  cache.store(key, {narrow, {base, narrow, {4, 2, "u", {4, 2, 2}, KnobSet::Conv}}, {1.0, 0.9, INFINITY}, "kept", {"m0", "m1", "m2"}});
  auto got = TuningCache(path()).lookup(key);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->chosen, narrow);
  EXPECT_EQ(got->chosen.knobs, KnobSet::Conv);
  ASSERT_EQ(got->times_ms.size(), 3u);
  EXPECT_TRUE(std::isinf(got->times_ms[2])) << "a rejected candidate stays rejected";
  EXPECT_EQ(got->notes, (std::vector<std::string>{"m0", "m1", "m2"}));
  EXPECT_EQ(got->candidates[2].conv.epilogue_unroll, 2);
}

// ---- the cache key (tuning_key.hpp) ----

TEST(TuningKey, EveryPartSeparatesDecisions) {
  Pipeline p;
  p.input_shape = {2, 3, 8, 8, 8};
  p.output_shape = {2, 4, 6, 6, 6};
  const DeviceIdentity h100{"NVIDIA H100 80GB HBM3 (sm_90)", "13000", "13.0"};
  const TuningKey k = tuning_key(h100, "source A", p);
  EXPECT_EQ(k.device, "NVIDIA H100 80GB HBM3 (sm_90)");
  EXPECT_EQ(k.driver, "13000");
  EXPECT_EQ(k.nvrtc, "13.0");
  EXPECT_EQ(k.shapes, "[2, 3, 8, 8, 8] -> [2, 4, 6, 6, 6]");
  EXPECT_EQ(k.source_hash, source_hash("source A"));
  EXPECT_EQ(k.source_hash.size(), 16u);
  EXPECT_EQ(source_hash(""), "cbf29ce484222325") << "FNV-1a 64's offset basis";
  EXPECT_EQ(tuning_key(h100, "source A", p).str(), k.str()) << "deterministic";
  std::vector<std::string> keys = {k.str()};
  DeviceIdentity other = h100;
  other.device = "NVIDIA H200 (sm_90)";
  keys.push_back(tuning_key(other, "source A", p).str());
  other = h100, other.driver = "12080";
  keys.push_back(tuning_key(other, "source A", p).str());
  other = h100, other.nvrtc = "12.8";
  keys.push_back(tuning_key(other, "source A", p).str());
  keys.push_back(tuning_key(h100, "source B", p).str());
  Pipeline q = p;
  q.input_shape[0] = 3, q.output_shape[0] = 3;
  keys.push_back(tuning_key(h100, "source A", q).str());
  for (size_t i = 0; i < keys.size(); ++i)
    for (size_t j = i + 1; j < keys.size(); ++j) EXPECT_NE(keys[i], keys[j]) << i << " vs " << j;
}

TEST(TuningKey, RuntimeLookupNeverFailsARunNorCreatesTheCache) {
  const std::string missing = (std::filesystem::path(::testing::TempDir()) / ("fb_no_cache_" + std::to_string(::getpid())) / "tuning.json").string();
  Plan plan;
  plan.pipeline.input_shape = {1, 1, 4};
  plan.pipeline.output_shape = {1, 1, 4};
  EXPECT_FALSE(cached_choice(plan, "src", missing).has_value());
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(missing).parent_path())) << "a run must not create the cache";
  const auto knobs = to_conv_tuning(ConvKnobs{2, 1, 2});
  EXPECT_EQ(knobs.mma_mpw, 2);
  EXPECT_EQ(knobs.min_blocks, 1);
  EXPECT_EQ(knobs.epilogue_unroll, 2);
}

// The tuning decisions live in the cubin cache's folder whatever the environment says: an empty
// FUSEBLOCK_CACHE_DIR or XDG_CACHE_HOME is unset (it made tuning.json relative to the working folder).
TEST(TuningCache, DefaultPathIsInTheCubinCacheFolder) {
  struct Env {
    const char* name;
    std::optional<std::string> old;
    explicit Env(const char* n) : name(n) {
      if (const char* v = std::getenv(n)) old = v;
    }
    ~Env() { old ? ::setenv(name, old->c_str(), 1) : ::unsetenv(name); }
  } cache("FUSEBLOCK_CACHE_DIR"), xdg("XDG_CACHE_HOME"), home("HOME");
  const std::string tmp = ::testing::TempDir();
  for (const auto& [dir, x, h] : std::vector<std::tuple<const char*, const char*, const char*>>{
           {"", "", tmp.c_str()}, {"", tmp.c_str(), tmp.c_str()}, {tmp.c_str(), "", ""}, {"", "", ""}, {nullptr, nullptr, nullptr}}) {
    const auto set = [](const char* n, const char* v) { v ? ::setenv(n, v, 1) : ::unsetenv(n); };
    set("FUSEBLOCK_CACHE_DIR", dir), set("XDG_CACHE_HOME", x), set("HOME", h);
    EXPECT_EQ(fuseblock::tune::TuningCache::default_path(),
              (std::filesystem::path(fuseblock::cuda::default_cache_dir()) / "tuning.json").string())
        << "FUSEBLOCK_CACHE_DIR='" << (dir ? dir : "(unset)") << "' XDG_CACHE_HOME='" << (x ? x : "(unset)") << "' HOME='"
        << (h ? h : "(unset)") << "'";
  }
}

TEST(TuneReportText, ShowsEveryCandidateItsTimeAndRule) {
  TuneReport r;
  r.tunable = true;
  r.measured = 2;
  r.device = "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)";
  r.key = {"NVIDIA H100 80GB HBM3 (sm_90)", "13000", "13.0", "0123456789abcdef", "[1] -> [1]"};
  const Config base{4, 2, "baseline (always measured)", {}, KnobSet::Conv};
  const Config unroll{4, 2, "low register pressure (79 < 96, no spill): epilogue unroll 2", {4, 2, 2}, KnobSet::Conv};
  r.record = {base, {base, unroll}, {1.0, 0.9}, "kept", {"fb_conv_output 79 regs", "fb_conv_output 80 regs"}};
  std::string t = r.text();
  for (const char* part : {"measured 2 configurations", "mpw 4, 2 blocks/SM, epilogue unroll 2", "-10.0%", "1.0000",
                           "epilogue unroll 2", "79 regs", "chosen: mpw 4, 2 blocks/SM, epilogue unroll 1 (kept)", "0123456789abcdef"})
    EXPECT_NE(t.find(part), std::string::npos) << part << "\n" << t;
  r.cached = true;
  r.record.times_ms[1] = INFINITY;
  t = r.text();
  EXPECT_EQ(t.rfind("cached", 0), 0u) << t;
  EXPECT_NE(t.find("rejected"), std::string::npos) << t;
  r.tunable = false;
  r.not_tunable_why = "the fill path has no knobs";
  EXPECT_EQ(r.text(), "nothing to tune: the fill path has no knobs\n");
}
