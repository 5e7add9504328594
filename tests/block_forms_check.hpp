// A block written as spec text, run on the CPU backend through the public API (parse, lower with
// simplify and guard, run) and compared with the float64 oracle on the unsimplified pipeline:
// the check the block-form tests (instance_norm, prelu, dropout mid-chain, the per-(sample,
// channel) input) share. Parameters and inputs are random, in the block's storage type, with
// NaN and Inf injected on request; every failure message carries a one-line repro.
#pragma once
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "fuseblock/fuseblock.hpp"
#include "oracle/compare.hpp"
#include "oracle/oracle.hpp"
#include "pipeline_fixtures.hpp"

namespace fbtest {

// Random parameters for every slot the exact pipeline has (norm affine away from 1 / 0), in
// the pipeline's storage type.
inline Params random_block_params(const Pipeline& exact, std::mt19937_64& rng) {
  Params params = random_params(exact, rng);
  Params defaults = init_params(exact, rng());  // the slots random_params does not know
  for (size_t i = 0; i < defaults.prelu_weight.size(); ++i) {
    Tensor& w = defaults.prelu_weight[i];
    std::uniform_real_distribution<float> slope(-0.6f, 0.6f);
    for (float& v : w.vec()) v = slope(rng);
  }
  params.prelu_weight = std::move(defaults.prelu_weight);
  for (Tensor* t : {&params.conv_weight, &params.conv_bias, &params.norm_weight, &params.norm_bias}) t->round_to(exact.types.storage);
  for (Tensor& t : params.prelu_weight) t.round_to(exact.types.storage);
  return params;
}

// Sets a few elements of t to NaN, +Inf or -Inf.
inline void inject_nonfinite(Tensor& t, std::mt19937_64& rng, int count) {
  const float bad[] = {std::nanf(""), INFINITY, -INFINITY};
  for (int i = 0; i < count && t.numel() > 0; ++i) t.data()[rng() % static_cast<uint64_t>(t.numel())] = bad[rng() % 3];
}

// Runs `spec` (seeded by `seed`) and checks it against the oracle. `nonfinite` injects that many
// NaN/Inf into the input, and as many into the per-(sample, channel) input of a block with
// add_per_sample_channel (random values in [-add_scale, add_scale], in the storage type).
inline void expect_spec_matches_oracle(const std::string& spec, uint64_t seed, int nonfinite = 0,
                                       const std::string& test = "", const Params* given = nullptr, float add_scale = 2.0f) {
  const std::string repro_line = "repro: FB_TEST_SEED=" + std::to_string(seed) + " fuseblock_tests --gtest_filter=" +
                                 test + "   # " + spec;
  std::mt19937_64 rng(seed);
  const Block b = parse_spec(spec, "t.block");
  const Plan plan = lower(b);
  LowerOptions exact_opts;
  exact_opts.simplify = false;
  const Plan exact = lower(b, exact_opts);
  const Pipeline& p = exact.pipeline;
  const DType d = p.types.storage;
  const Params params = given ? *given : random_block_params(p, rng);
  Tensor x = uniform_input(p.input_shape, rng);
  inject_nonfinite(x, rng, nonfinite);
  x.round_to(d);
  RunOptions cpu;
  cpu.device = Device::Cpu;
  Tensor add;
  if (p.channel_add()) {
    add = uniform_input(channel_add_shape(exact), rng, -add_scale, add_scale);
    inject_nonfinite(add, rng, nonfinite);
    add.round_to(d);
  }
  const Tensor y = p.channel_add() ? run(plan, params, x, add, cpu) : run(plan, params, x, cpu);
  OracleStats stats;
  const std::vector<double> ref = oracle_forward(p, params, x, &stats, p.channel_add() ? &add : nullptr);
  const Comparison c = compare_with_oracle(y, ref, stats, rtol_for(d));
  EXPECT_TRUE(c.ok) << c.message << "\n" << repro_line;
}

}  // namespace fbtest
