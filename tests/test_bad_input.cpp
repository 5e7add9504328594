// Bad input of the kinds PyTorch rejects, or that used to be silently taken: each is a UserError
// at the right line:col (the CLI's and Python's cases are in test_cli.cpp and tests/python).
#include <gtest/gtest.h>

#include "fuseblock/fuseblock.hpp"
#include "user_error_of.hpp"

using namespace fuseblock;

namespace {

UserError parse_error(const std::string& spec) {
  return user_error_of([&] { parse_spec(spec, "t.block"); }, spec);
}

const char* kHead = "input f32[1, 2, 8]\nconv1d 4 3\n";

}  // namespace

TEST(BadInput, HardtanhNeedsMaxAboveMinAsNnHardtanh) {
  UserError e = parse_error(std::string(kHead) + "hardtanh min_val=2 max_val=-2\n");
  EXPECT_EQ(e.loc().line, 3);
  EXPECT_EQ(e.loc().col, 20);  // at max_val
  EXPECT_NE(std::string(e.what()).find("max_val > min_val"), std::string::npos) << e.formatted();
  EXPECT_NE(e.hint().find("clamp"), std::string::npos);
  // Equal bounds and NaN bounds fail nn.Hardtanh's assert too; the defaults and a valid pair pass.
  parse_error(std::string(kHead) + "hardtanh min_val=0.5 max_val=0.5\n");
  parse_error(std::string(kHead) + "hardtanh max_val=nan\n");
  EXPECT_EQ(parse_error(std::string(kHead) + "hardtanh min_val=3\n").loc().col, 1);  // default max_val=1
  EXPECT_NO_THROW(parse_spec(std::string(kHead) + "hardtanh\nhardtanh min_val=-0.5 max_val=0.25\n"));
}

TEST(BadInput, ParamsGivenTwiceNamesBothPlaces) {
  UserError e = parse_error("params seed=1\n" + std::string(kHead) + "relu\n  params file=w.safetensors\n");
  EXPECT_EQ(e.loc().line, 5);
  EXPECT_EQ(e.loc().col, 3);
  EXPECT_NE(std::string(e.what()).find("line 1, column 1"), std::string::npos) << e.formatted();
  EXPECT_NO_THROW(parse_spec(std::string(kHead) + "params seed=4\n"));
}

TEST(BadInput, UnexpectedBytesAreShownInHexSoMessagesStayValidText) {
  for (const std::string& bad : {std::string("relu \xc3\xbc\n"), std::string("relu \x01\n"), std::string("relu \x7f\n")}) {
    UserError e = parse_error(std::string(kHead) + bad);
    EXPECT_EQ(e.loc().col, 6);
    const std::string what = e.what();
    EXPECT_NE(what.find("unexpected character '\\x"), std::string::npos) << what;
    for (char c : what) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "byte " << int(static_cast<unsigned char>(c)) << " in: " << what;
  }
  EXPECT_NE(std::string(parse_error(std::string(kHead) + "relu $\n").what()).find("'$'"), std::string::npos);
}
