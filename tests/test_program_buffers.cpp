// The launch program's buffers as the executor and verify see them, without a GPU: DeviceTensors
// binds the caller's memory by role and index or by the Python package's names, refuses scratch
// roles and unknown names with the fix; a strategy's own scratch is a named Private buffer that
// needs no role; verify checks an engine's layout copy against the source it declares (grown past
// its padding, the copy fails) and names no strategy's buffer.
#include <gtest/gtest.h>

#include "cuda/executor/executor.hpp"
#include "cuda/runtime/driver_api.hpp"
#include "cuda/select/select.hpp"
#include "fuseblock/fuseblock.hpp"
#include "verify/verify_plan.hpp"

using namespace fuseblock;
using R = cuda::BufferRole;

TEST(DeviceTensors, BindsByRoleIndexAndNameAndRefusesWhatTheExecutorPlaces) {
  cuda::DeviceTensors t;
  EXPECT_EQ(t.get(R::Input), 0u) << "unbound reads 0";
  t.bind(R::Input, 0x1000).bind(R::PreluWeight, 0x2000, 1).bind(R::PreluWeight, 0x3000);
  EXPECT_EQ(t.get(R::Input), 0x1000u);
  EXPECT_EQ(t.get(R::PreluWeight, 1), 0x2000u);
  EXPECT_EQ(t.get(R::PreluWeight, 0), 0x3000u);
  t.bind(R::Input, 0x4000);
  EXPECT_EQ(t.get(R::Input), 0x4000u) << "a second binding replaces the first";
  t.bind("output", 0x5000).bind("conv.weight", 0x6000).bind("prelu.2.weight", 0x7000).bind("scratch", 0x8000);
  t.bind("dropout state", 0x9000).bind("channel add", 0xa000).bind("prelu.weight", 0xb000);
  EXPECT_EQ(t.get(R::Output), 0x5000u);
  EXPECT_EQ(t.get(R::ConvWeight), 0x6000u);
  EXPECT_EQ(t.get(R::PreluWeight, 2), 0x7000u);
  EXPECT_EQ(t.get(R::PreluWeight, 0), 0xb000u);
  EXPECT_EQ(t.get(R::DropoutState), 0x9000u);
  EXPECT_EQ(t.get(R::ChannelAdd), 0xa000u);
  EXPECT_EQ(t.scratch, 0x8000u);
  for (const char* bad : {"norm.gamma", "prelu.x.weight", "prelu..weight", "Input", ""}) {
    try {
      t.bind(bad, 1);
      ADD_FAILURE() << "'" << bad << "' was bound";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("unknown buffer '") + bad + "'"), std::string::npos) << e.what();
    }
  }
  for (R scratch : {R::GuardFlags, R::StatsPartials, R::ConvOutput, R::Private}) {
    try {
      t.bind(scratch, 1);
      ADD_FAILURE() << cuda::buffer_role_name(scratch) << " was bound";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(cuda::buffer_role_name(scratch)), std::string::npos) << e.what();
    }
  }
  cuda::DeviceTensors many;
  for (int k = 0; k < static_cast<int>(cuda::DeviceTensors::kMaxBound); ++k) many.bind(R::PreluWeight, 16, k);
  EXPECT_THROW(many.bind(R::PreluWeight, 16, 99), UserError);
}

TEST(BufferRef, PrivateScratchIsNamedAndIndexedRolesAreShown) {
  const cuda::BufferRef a = cuda::BufferRef::scratch("norm a, b"), b = cuda::BufferRef::scratch("packed conv.weight");
  EXPECT_FALSE(a == b);
  EXPECT_TRUE(a == cuda::BufferRef::scratch("norm a, b"));
  EXPECT_EQ(cuda::buffer_name(a), "norm a, b");
  EXPECT_EQ(cuda::buffer_name(cuda::BufferRef(R::PreluWeight, 2)), "prelu.weight[2]");
  EXPECT_EQ(cuda::buffer_name(R::Input), "input");
  cuda::LaunchProgram p;
  p.buffers.push_back({a, cuda::BufferKind::Scratch, 100});
  p.buffers.push_back({b, cuda::BufferKind::Scratch, 300});
  const cuda::ScratchLayout l = cuda::scratch_layout(p);
  EXPECT_EQ(l.offset_of(a), size_t{0});
  EXPECT_EQ(l.offset_of(b), size_t{256});
  EXPECT_EQ(p.bytes_of(b), 300u);
  EXPECT_EQ(p.bytes_of(cuda::BufferRef::scratch("another")), 0u);
}

// The igemm program's two layout copies pass verify; one grown by a row's padding fails, naming
// the copy and its source. No strategy's buffer is named in verify: the check comes from LayoutCopy.
TEST(VerifyLayoutCopies, TheIgemmCopiesAreTheirSourcesPaddedAsDeclared) {
  std::string why;
  if (!cuda::nvrtc_available(&why)) GTEST_SKIP() << "NVRTC not available: " << why;
  const Plan plan = lower(parse_spec("input bf16[2, 5, 12, 12]\nconv2d 32 3 padding=1\ngroup_norm 8\nsilu\n", "t"));
  const cuda::ConvProblem problem{&plan, true};
  const cuda::ConvStrategy& so = *cuda::find_strategy("store_once");
  const std::vector<cuda::ConvTuning> cfgs = so.configs(problem);
  ASSERT_GE(cfgs.size(), 2u);
  const cuda::LaunchProgram prog = so.build(problem, cfgs[1]);
  int copies = 0;
  for (const cuda::Buffer& b : prog.buffers) copies += b.copy_of.has_value();
  ASSERT_EQ(copies, 2) << cuda::describe(prog);
  const verify::VerifyReport ok = verify::verify_source(plan, prog, prog.source, "sm_90");
  EXPECT_TRUE(ok.ok()) << ok.text();
  EXPECT_NE(ok.text().find("ok    channels-last input is input in its layout"), std::string::npos) << ok.text();
  EXPECT_NE(ok.text().find("ok    packed conv.weight is conv.weight in its layout"), std::string::npos) << ok.text();
  for (const char* name : {"channels-last input", "packed conv.weight"}) {
    cuda::LaunchProgram grown = prog;
    for (cuda::Buffer& b : grown.buffers)
      if (b.ref == cuda::BufferRef::scratch(name)) b.bytes += 64;
    const verify::VerifyReport r = verify::verify_source(plan, grown, grown.source, "sm_90");
    EXPECT_FALSE(r.ok()) << name;
    EXPECT_NE(r.text().find(std::string("FAIL  ") + name + " is"), std::string::npos) << r.text();
  }
}
