// simplify as one forward walk (src/passes/simplify.cpp) against the exact block: random chains
// drawn to fold often (repeated min/max, identities, constants, NaN and infinite scalars) run on
// the CPU with and without simplification, on inputs with NaN and Inf in some samples, and must
// agree element for element (the sign of a zero aside, as simplify documents).
#include <cmath>
#include <random>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "fuseblock/fuseblock.hpp"
#include "fuseblock/random.hpp"

using namespace fuseblock;

namespace {

std::string random_chain(std::mt19937_64& rng) {
  static const char* constants[] = {"0", "-0.0", "1", "-1", "0.5", "2", "1e30", "inf", "-inf", "nan"};
  auto c = [&] { return constants[rng() % std::size(constants)]; };
  std::string chain;
  const int n = 1 + static_cast<int>(rng() % 8);
  for (int i = 0; i < n; ++i) {
    switch (rng() % 13) {
      case 0: chain += fmt::format("minimum {}\n", c()); break;
      case 1: chain += fmt::format("maximum {}\n", c()); break;
      case 2: chain += fmt::format("clamp min={} max={}\n", c(), c()); break;
      case 3: chain += fmt::format("clamp {}={}\n", rng() % 2 ? "min" : "max", c()); break;
      case 4: chain += "relu\n"; break;
      case 5: chain += fmt::format("mul {}\n", c()); break;
      case 6: chain += fmt::format("add {}\n", c()); break;
      case 7: chain += fmt::format("sub {}\n", c()); break;
      case 8: chain += fmt::format("div {}\n", c()); break;
      case 9: chain += "sigmoid\n"; break;
      case 10: chain += "tanh\n"; break;
      case 11: chain += "hardtanh min_val=-0.5 max_val=0.25\n"; break;
      default: chain += "silu\n"; break;
    }
  }
  if (rng() % 3 == 0) chain += fmt::format("dropout p=0.5 training={} seed=7\n", rng() % 2 ? "true" : "false");
  return chain;
}

bool same_value(float a, float b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

}  // namespace

TEST(SimplifyRandom, SimplifiedPlansComputeTheExactBlock) {
  const uint64_t seed = std::random_device{}();
  std::mt19937_64 rng(seed);
  int folded = 0;
  for (int trial = 0; trial < 150; ++trial) {
    const std::string spec = fmt::format("input f32[3, 2, 7]\nconv1d 4 3\n{}{}", rng() % 2 ? "group_norm 2\n" : "",
                                         random_chain(rng));
    SCOPED_TRACE(fmt::format("repro: seed {} trial {}\n{}", seed, trial, spec));
    const Block block = parse_spec(spec);
    const Plan simplified = lower(block);
    LowerOptions exact_options;
    exact_options.simplify = false;
    const Plan exact = lower(block, exact_options);
    folded += simplified.pipeline.chain.size() < exact.pipeline.chain.size();
    const Params params = init_params(exact.pipeline, trial);
    Tensor x = uniform_tensor(exact.pipeline.input_shape, trial, -3.0f, 3.0f);
    x.data()[5] = std::nanf("");                         // sample 0: NaN
    x.data()[14 + 3] = std::numeric_limits<float>::infinity();  // sample 1: +inf
    RunOptions cpu;
    cpu.device = Device::Cpu;
    const Tensor want = run(exact, params, x, cpu);
    const Tensor got = run(simplified, params, x, cpu);
    ASSERT_EQ(got.shape(), want.shape());
    for (int64_t i = 0; i < want.numel(); ++i)
      ASSERT_TRUE(same_value(got.data()[i], want.data()[i])) << "element " << i << ": " << got.data()[i] << " vs " << want.data()[i];
  }
  EXPECT_GT(folded, 30) << "the chains should exercise the rewrites";
}
