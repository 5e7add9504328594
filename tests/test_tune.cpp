// The tuner's rules (the seed's optimization stage) and its cache, without a GPU.
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tune/tuning_cache.hpp"
#include "tune/tuning_rules.hpp"

using namespace fuseblock::tune;

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
