// Tensor basics, UserError formatting, and the .npy / safetensors readers and writers.
// Every test writes its files into its own folder under ::testing::TempDir(); no fixtures on disk.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "fuseblock/error.hpp"
#include "fuseblock/fuseblock.hpp"
#include "fuseblock/io.hpp"
#include "fuseblock/tensor.hpp"

namespace fb = fuseblock;
namespace fs = std::filesystem;

namespace {

// A fresh, empty folder for the running test, removed when the test ends.
struct ScratchDir {
  std::string path;
  ScratchDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    fs::path dir = fs::path(::testing::TempDir()) / (std::string("fb_io_") + info->test_suite_name() + "_" +
                                                     info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    path = dir.string();
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// Random data with awkward values mixed in: NaN, +-Inf, -0.0, denormals, extremes.
fb::Tensor random_tensor(const fb::Shape& shape, uint64_t seed) {
  std::mt19937_64 gen(seed);
  fb::Tensor t(shape);
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(), -0.0f, std::numeric_limits<float>::denorm_min(),
                            std::numeric_limits<float>::max(), -1e-40f};
  for (float& v : t.vec()) {
    uint64_t r = gen();
    if (r % 17 == 0) {
      v = specials[(r >> 8) % 7];
    } else {
      v = static_cast<float>(static_cast<int64_t>(r >> 11) - (int64_t{1} << 52)) * 0x1.0p-40f;
    }
  }
  return t;
}

// Bit-exact comparison (NaN == NaN, -0.0 != 0.0).
void expect_same(const fb::Tensor& a, const fb::Tensor& b) {
  ASSERT_EQ(a.shape(), b.shape());
  ASSERT_EQ(a.numel(), b.numel());
  if (a.numel() > 0) {
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), static_cast<size_t>(a.numel()) * 4));
  }
}

// Runs `f`, expects a UserError whose message contains every piece.
template <class F>
std::string expect_user_error(F&& f, std::initializer_list<std::string> pieces) {
  try {
    f();
  } catch (const fb::UserError& e) {
    std::string msg = e.formatted();
    for (const std::string& p : pieces) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected a UserError, got: " << e.what();
    return {};
  }
  ADD_FAILURE() << "expected a UserError, nothing was thrown";
  return {};
}

uint32_t le32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

std::string npy_file(int major, const std::string& header, const std::string& data) {
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  uint32_t n = static_cast<uint32_t>(header.size());
  out += static_cast<char>(n & 0xff);
  out += static_cast<char>(n >> 8);
  if (major > 1) {
    out += static_cast<char>(n >> 16);
    out += static_cast<char>(n >> 24);
  }
  return out + header + data;
}

std::string floats_bytes(std::initializer_list<float> v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), std::data(v), s.size());
  return s;
}

std::string st_file(const std::string& json, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + json + data;
}

size_t count_files(const std::string& dir) {
  return static_cast<size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

// Random 16-bit patterns of type d (every class: normal, subnormal, +-0, +-inf, NaN), as a tensor.
fb::Tensor random_half_tensor(fb::DType d, const fb::Shape& shape, std::mt19937_64& rng) {
  fb::Tensor t(shape);
  for (float& v : t.vec()) {
    const auto bits = static_cast<uint16_t>(rng());
    v = d == fb::DType::BF16 ? fb::bf16_bits_to_float(bits) : fb::f16_bits_to_float(bits);
  }
  t.round_to(d);
  return t;
}

// expect_same, and the same dtype tag.
void expect_same_typed(const fb::Tensor& a, const fb::Tensor& b) {
  ASSERT_EQ(a.dtype(), b.dtype());
  expect_same(a, b);
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

// ---- Tensor and UserError -------------------------------------------------------------------

TEST(Tensor, ShapeAndNumel) {
  EXPECT_EQ(fb::shape_str({128, 3, 16, 64, 64}), "[128, 3, 16, 64, 64]");
  EXPECT_EQ(fb::shape_str({}), "[]");
  EXPECT_EQ(fb::shape_str({7}), "[7]");
  EXPECT_EQ(fb::numel({128, 3, 16, 64, 64}), 25165824);
  EXPECT_EQ(fb::numel({}), 1);
  EXPECT_EQ(fb::numel({4, 0, 5}), 0);
  EXPECT_EQ(fb::numel({1 << 20, 1 << 20, 4}), int64_t{1} << 42);  // 64-bit sizes
}

TEST(Tensor, Constructors) {
  fb::Tensor a({2, 3}, 1.5f);
  EXPECT_EQ(a.numel(), 6);
  EXPECT_EQ(a.dim(), 2);
  EXPECT_EQ(a.size(1), 3);
  for (float v : a.vec()) EXPECT_EQ(v, 1.5f);
  fb::Tensor b({2, 2}, std::vector<float>{1, 2, 3, 4});
  EXPECT_EQ(b.data()[3], 4.0f);
  fb::Tensor scalar(fb::Shape{});
  EXPECT_EQ(scalar.numel(), 1);
  EXPECT_TRUE(fb::Tensor().empty());
  EXPECT_THROW(fb::Tensor({2, 3}, std::vector<float>{1, 2}), fb::InternalError);
}

TEST(UserError, Formatted) {
  fb::UserError plain("bad thing");
  EXPECT_EQ(plain.formatted(), "error: bad thing");
  EXPECT_STREQ(plain.what(), "bad thing");
  fb::UserError hinted("bad thing", "do this");
  EXPECT_EQ(hinted.formatted(), "error: bad thing\n  hint: do this");
  EXPECT_EQ(hinted.hint(), "do this");
  fb::UserError located("unknown op 'foo'", "did you mean 'silu'?", fb::SourceLoc{3, 14}, "spec.block");
  EXPECT_EQ(located.formatted(), "spec.block:3:14: error: unknown op 'foo'\n  hint: did you mean 'silu'?");
  EXPECT_EQ(located.loc().line, 3);
  fb::UserError no_loc("x", {}, fb::SourceLoc{}, "spec.block");  // line 0: not from a spec
  EXPECT_EQ(no_loc.formatted(), "error: x");
}

// ---- .npy --------------------------------------------------------------------------------------

TEST(Npy, RoundTripRandom) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 gen(seed);
  for (int trial = 0; trial < 20; ++trial) {
    fb::Shape shape;
    int dims = static_cast<int>(gen() % 6);
    for (int d = 0; d < dims; ++d) shape.push_back(static_cast<int64_t>(gen() % 7) + 1);
    fb::Tensor t = random_tensor(shape, gen());
    std::string path = dir + "/t" + std::to_string(trial) + ".npy";
    fb::save_tensor(path, t);
    std::string bytes = read_bytes(path);
    ASSERT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
    size_t header_end = 10 + (static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8));
    EXPECT_EQ(header_end % 64, 0u) << "numpy aligns the data to 64 bytes";
    EXPECT_EQ(bytes[header_end - 1], '\n');
    expect_same(fb::load_tensor(path), t);
    expect_same(fb::load_npy(path), t);
  }
}

TEST(Npy, ZeroDimAndEmpty) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  fb::Tensor scalar(fb::Shape{}, std::vector<float>{-2.5f});
  fb::save_tensor(dir + "/s.npy", scalar);
  EXPECT_NE(read_bytes(dir + "/s.npy").find("'shape': ()"), std::string::npos);
  expect_same(fb::load_tensor(dir + "/s.npy"), scalar);
  for (fb::Shape shape : {fb::Shape{0}, fb::Shape{3, 0, 2}}) {
    fb::Tensor e(shape);
    fb::save_tensor(dir + "/e.npy", e);
    fb::Tensor back = fb::load_tensor(dir + "/e.npy");
    EXPECT_EQ(back.shape(), shape);
    EXPECT_EQ(back.numel(), 0);
  }
  EXPECT_NE(read_bytes(dir + "/e.npy").find("'shape': (3, 0, 2)"), std::string::npos);
  fb::save_tensor(dir + "/one.npy", fb::Tensor({5}, 1.0f));
  EXPECT_NE(read_bytes(dir + "/one.npy").find("'shape': (5,)"), std::string::npos);
}

TEST(Npy, HeaderSpellings) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  std::string data = floats_bytes({1, 2, 3, 4, 5, 6});
  const std::string headers[] = {
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n",
      "{\"descr\":\"<f4\",\"fortran_order\":False,\"shape\":(2,3)}",
      "{ 'shape' : ( 2 , 3 , ) ,  'fortran_order' : False , 'descr' : '<f4' }      \n",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }\n",  // Python 2
  };
  for (const std::string& h : headers) {
    SCOPED_TRACE(h);
    for (int major : {1, 2, 3}) {
      write_bytes(dir + "/h.npy", npy_file(major, h, data));
      fb::Tensor t = fb::load_tensor(dir + "/h.npy");
      EXPECT_EQ(t.shape(), (fb::Shape{2, 3}));
      EXPECT_EQ(t.data()[5], 6.0f);
    }
  }
}

TEST(Npy, FortranOrder) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  write_bytes(dir + "/f.npy",
              npy_file(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n", floats_bytes({1, 2, 3, 4, 5, 6})));
  std::string msg = expect_user_error([&] { fb::load_tensor(dir + "/f.npy"); }, {dir + "/f.npy", "Fortran order", "[2, 3]"});
  EXPECT_NE(msg.find("hint: "), std::string::npos);
  EXPECT_NE(msg.find("ascontiguousarray"), std::string::npos);
  // With at most one dimension > 1, Fortran and C order are the same bytes.
  write_bytes(dir + "/v.npy",
              npy_file(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 3), }\n", floats_bytes({7, 8, 9})));
  EXPECT_EQ(fb::load_tensor(dir + "/v.npy").data()[2], 9.0f);
}

TEST(Npy, Errors) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  std::string p = dir + "/bad.npy";
  std::string good = npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", floats_bytes({1, 2, 3, 4, 5, 6}));

  write_bytes(p, "\x93NUMPX" + good.substr(6));
  expect_user_error([&] { fb::load_npy(p); }, {p, "bad magic"});
  write_bytes(p, "");
  expect_user_error([&] { fb::load_npy(p); }, {p, "too short"});
  write_bytes(p, good.substr(0, good.size() - 1));
  expect_user_error([&] { fb::load_npy(p); }, {p, "truncated", "[2, 3]", "24 bytes"});
  write_bytes(p, good.substr(0, 30));
  expect_user_error([&] { fb::load_npy(p); }, {p, "truncated", "header"});
  write_bytes(p, good + "xx");
  expect_user_error([&] { fb::load_npy(p); }, {p, "2 unexpected bytes"});
  write_bytes(p, npy_file(4, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", floats_bytes({1, 2, 3, 4, 5, 6})));
  expect_user_error([&] { fb::load_npy(p); }, {p, "version 4.0"});

  write_bytes(p, npy_file(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }\n", std::string(24, '\0')));
  expect_user_error([&] { fb::load_npy(p); }, {p, "'<f8'", "float32", "hint: "});
  write_bytes(p, npy_file(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }\n", std::string(12, '\0')));
  expect_user_error([&] { fb::load_npy(p); }, {p, "'>f4'", "big-endian"});
  write_bytes(p, npy_file(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }\n", std::string(12, '\0')));
  expect_user_error([&] { fb::load_npy(p); }, {p, "structured"});

  const std::pair<std::string, std::string> malformed[] = {
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), \n", "malformed"},
      {"{'descr': '<f4', 'fortran_order': False 'shape': (2, 3)}\n", "expected ',' or '}'"},
      {"{'descr': '<f4', 'fortran_order': Flase, 'shape': (2, 3)}\n", "unexpected character"},
      {"{'descr': '<f4, 'fortran_order': False, 'shape': (2, 3)}\n", "malformed"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3)}\n", "non-negative"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)} x\n", "after the closing"},
      {"{'descr': '<f4', 'shape': (2, 3)}\n", "lacks 'fortran_order'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}\n", "unexpected key 'extra'"},
      {"{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3)}\n", "fortran_order"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': 6}\n", "not a tuple"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}\n", "too large"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}\n", "too large"},
      // Nesting: tens of thousands of '(' once overflowed the recursive parser's stack.
      {"{'descr': '<f4', 'fortran_order': False, 'shape': " + std::string(60000, '(') + "}\n", "nested more than 64"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': " + std::string(64, '[') + std::string(64, ']') + "}\n", "non-negative integer"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': ((2,), 3)}\n", "non-negative integer"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3]}\n", "expected ',' or ')'"},
  };
  for (const auto& [header, what] : malformed) {
    SCOPED_TRACE(header);
    write_bytes(p, npy_file(1, header, floats_bytes({1, 2, 3, 4, 5, 6})));
    expect_user_error([&] { fb::load_npy(p); }, {p, what});
  }
}

// ---- safetensors -------------------------------------------------------------------------------

TEST(Safetensors, RoundTripRandom) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 gen(seed);
  std::map<std::string, fb::Tensor> tensors;
  tensors["conv.weight"] = random_tensor({16, 3, 3, 3, 3}, gen());
  tensors["conv.bias"] = random_tensor({16}, gen());
  tensors["scalar"] = random_tensor({}, gen());
  tensors["empty"] = fb::Tensor({0, 4});
  tensors["odd"] = random_tensor({7, 1, 5}, gen());
  std::string path = dir + "/m.safetensors";
  fb::save_safetensors(path, tensors);

  std::string bytes = read_bytes(path);
  uint64_t hl = le32(bytes, 0) | (uint64_t{le32(bytes, 4)} << 32);
  EXPECT_EQ(hl % 8, 0u);
  EXPECT_EQ(bytes[8], '{');

  auto back = fb::load_safetensors(path);
  ASSERT_EQ(back.size(), tensors.size());
  for (auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    ASSERT_EQ(back.count(name), 1u);
    expect_same(back[name], t);
    expect_same(fb::load_tensor(path + ":" + name), t);
  }
  expect_user_error([&] { fb::load_tensor(path); }, {path, "holds 5 tensors", "conv.bias", "hint: name it as " + path + ":NAME"});
  expect_user_error([&] { fb::load_tensor(path + ":nope"); }, {path, "no tensor 'nope'", "conv.weight"});

  // One tensor: no name needed; save_tensor names it "output" unless the path says otherwise.
  fb::Tensor x = random_tensor({2, 3, 4}, gen());
  fb::save_tensor(dir + "/one.safetensors", x);
  expect_same(fb::load_tensor(dir + "/one.safetensors"), x);
  expect_same(fb::load_tensor(dir + "/one.safetensors:output"), x);
  fb::save_tensor(dir + "/two.safetensors:y", x, "ignored");
  expect_same(fb::load_safetensors(dir + "/two.safetensors").at("y"), x);
}

TEST(Safetensors, ReadsHandWrittenFileWithMetadataAndPadding) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  std::string p = dir + "/h.safetensors";
  write_bytes(p, st_file("{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}      ",
                         floats_bytes({1, 2, 3})));
  auto m = fb::load_safetensors(p);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m["a"].data()[1], 2.0f);
  EXPECT_EQ(m["b"].data()[0], 3.0f);
}

TEST(Safetensors, Errors) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  std::string p = dir + "/bad.safetensors";
  std::string data = floats_bytes({1, 2, 3, 4, 5, 6});
  std::string good = st_file("{\"x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", data);
  write_bytes(p, good);
  EXPECT_EQ(fb::load_tensor(p).data()[4], 5.0f);

  write_bytes(p, good.substr(0, good.size() - 4));
  expect_user_error([&] { fb::load_tensor(p); }, {p, "truncated", "'x'"});
  write_bytes(p, good.substr(0, 20));
  expect_user_error([&] { fb::load_tensor(p); }, {p, "truncated", "header"});
  write_bytes(p, good.substr(0, 5));
  expect_user_error([&] { fb::load_tensor(p); }, {p, "truncated", "8-byte"});
  write_bytes(p, std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}");
  expect_user_error([&] { fb::load_tensor(p); }, {p, "implausible"});
  write_bytes(p, good + "junk");
  expect_user_error([&] { fb::load_tensor(p); }, {p, "4 bytes after the last tensor"});

  const std::pair<std::string, std::string> cases[] = {
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}", "not valid JSON"},
      {"[1,2]", "not a JSON object"},
      {"{\"x\":5}", "'x': header entry is not an object"},
      {"{\"x\":{\"shape\":[2,3],\"data_offsets\":[0,24]}}", "\"dtype\" is missing"},
      {"{\"x\":{\"dtype\":\"F32\",\"data_offsets\":[0,24]}}", "\"shape\" is missing"},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,24]}}", "non-negative integer"},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2,3.5],\"data_offsets\":[0,24]}}", "non-negative integer"},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0]}}", "data_offsets"},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[24,0]}}", "end before they begin"},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,28]}}", "run past the end of the data (24 bytes)"},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,99999999999]}}", "run past the end"},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,24]}}", "shape [2, 2] needs 16 bytes"},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,24]}}", "too large"},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},\"y\":{\"dtype\":\"F32\",\"shape\":[3],"
       "\"data_offsets\":[8,20]}}",
       "overlap"},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"y\":{\"dtype\":\"F32\",\"shape\":[3],"
       "\"data_offsets\":[12,24]}}",
       "gap of 4 bytes"},
  };
  for (const auto& [json, what] : cases) {
    SCOPED_TRACE(json);
    write_bytes(p, st_file(json, data));
    expect_user_error([&] { fb::load_safetensors(p); }, {p, what});
  }
}

TEST(Safetensors, OtherDtypes) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  std::string p = dir + "/d.safetensors";
  // F64 and I16 are well-formed safetensors; reading them is refused, naming the dtype.
  write_bytes(p, st_file("{\"w\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[0,24]}}", std::string(24, '\0')));
  std::string msg = expect_user_error([&] { fb::load_tensor(p); }, {p, "'w'", "dtype F64", "F32"});
  EXPECT_NE(msg.find("hint: "), std::string::npos);
  write_bytes(p, st_file("{\"w\":{\"dtype\":\"I16\",\"shape\":[3],\"data_offsets\":[0,8]}}", std::string(8, '\0')));
  expect_user_error([&] { fb::load_tensor(p); }, {"I16 and shape [3] needs 6 bytes"});
  // A tensor of another dtype that is not read does not stop the others being read.
  write_bytes(p, st_file("{\"h\":{\"dtype\":\"I16\",\"shape\":[3],\"data_offsets\":[0,6]},"
                         "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[6,14]}}",
                         std::string(6, '\0') + floats_bytes({4, 5})));
  EXPECT_EQ(fb::load_tensor(p + ":w").data()[1], 5.0f);
  expect_user_error([&] { fb::load_safetensors(p); }, {"'h'", "dtype I16"});
}

// ---- paths and atomic writes ---------------------------------------------------------------------

TEST(TensorIo, UnknownExtension) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  for (const std::string& path : {dir + "/x.pt", dir + "/x", dir + "/x.npz", dir + "/x.safetensors.bak"}) {
    std::string msg = expect_user_error([&] { fb::load_tensor(path); }, {path, "unknown tensor file type", ".npy", ".safetensors"});
    EXPECT_NE(msg.find("hint: "), std::string::npos);
    expect_user_error([&] { fb::save_tensor(path, fb::Tensor({1}, 0.f)); }, {path, "unknown tensor file type"});
  }
  expect_user_error([&] { fb::load_tensor(dir + "/x.safetensors:"); }, {"empty tensor name"});
}

TEST(TensorIo, MissingFile) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  expect_user_error([&] { fb::load_tensor(dir + "/nope.npy"); }, {dir + "/nope.npy", "cannot open"});
  expect_user_error([&] { fb::load_tensor(dir + "/nope.safetensors"); }, {dir + "/nope.safetensors", "cannot open"});
  fs::create_directories(dir + "/d.npy");
  expect_user_error([&] { fb::load_tensor(dir + "/d.npy"); }, {"not a regular file"});
}

TEST(TensorIo, AtomicWrite) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  fb::Tensor a = random_tensor({3, 4}, 1), b = random_tensor({5}, 2);
  for (const std::string ext : {".npy", ".safetensors"}) {
    std::string path = dir + "/out" + ext;
    fb::save_tensor(path, a);
    fb::save_tensor(path, b);  // replaces the old file
    expect_same(fb::load_tensor(path), b);
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0644u);
  }
  EXPECT_EQ(count_files(dir), 2u) << "no temporary files are left behind";

  // A failed write leaves nothing: target in a missing folder; target is a folder.
  expect_user_error([&] { fb::save_tensor(dir + "/missing/out.npy", a); }, {dir + "/missing/out.npy"});
  fs::create_directories(dir + "/folder.npy");
  expect_user_error([&] { fb::save_tensor(dir + "/folder.npy", a); }, {dir + "/folder.npy", "rename"});
  expect_user_error([&] { fb::save_tensor(dir + "/folder.safetensors", fb::Tensor()); }, {"no data"});
  expect_user_error([&] { fb::save_tensor(dir + "/folder2.npy", fb::Tensor()); }, {"no data"});
  EXPECT_TRUE(fs::is_directory(dir + "/folder.npy"));
  EXPECT_EQ(count_files(dir), 3u) << "no temporary files are left behind";
  expect_user_error([&] { fb::save_safetensors(dir + "/m.safetensors", {{"__metadata__", a}}); }, {"__metadata__"});
}

// ---- bf16 and f16 ---------------------------------------------------------------------------------

TEST(HalfFiles, Float16NpyRoundTripsAndIsNumpysLayout) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  std::mt19937_64 rng(std::random_device{}());
  const fb::Tensor t = random_half_tensor(fb::DType::F16, {3, 5, 7}, rng);
  const std::string path = dir + "/h.npy";
  fb::save_tensor(path, t);
  const std::string bytes = read_bytes(path);
  EXPECT_TRUE(contains(bytes, "'descr': '<f2'")) << bytes.substr(0, 128);
  const size_t header_end = 10 + (static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8));
  ASSERT_EQ(bytes.size() - header_end, 2u * 105u);
  // The data is each value's IEEE half bits, little-endian, in C order.
  for (int64_t i = 0; i < t.numel(); ++i) {
    const uint16_t want = fb::float_to_f16_bits(t.data()[i]);
    const auto got = static_cast<uint16_t>(static_cast<unsigned char>(bytes[header_end + 2 * i]) |
                                           (static_cast<unsigned char>(bytes[header_end + 2 * i + 1]) << 8));
    ASSERT_EQ(got, want) << i;
  }
  expect_same_typed(fb::load_tensor(path), t);
}

TEST(HalfFiles, Float16NpyFromKnownBytes) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  // 1.0, -2.0, 65504, +inf, 2^-24 (the smallest subnormal), -0.0, as numpy writes them.
  const uint16_t bits[] = {0x3c00, 0xc000, 0x7bff, 0x7c00, 0x0001, 0x8000};
  const std::string header = "{'descr': '<f2', 'fortran_order': False, 'shape': (6,), }";
  std::string file = std::string("\x93NUMPY\x01\x00", 8);
  std::string padded = header + std::string(64 - (10 + header.size() + 1) % 64, ' ') + "\n";
  file += static_cast<char>(padded.size() & 0xff);
  file += static_cast<char>(padded.size() >> 8);
  file += padded;
  file.append(reinterpret_cast<const char*>(bits), sizeof bits);
  std::ofstream(dir + "/k.npy", std::ios::binary) << file;
  const fb::Tensor t = fb::load_tensor(dir + "/k.npy");
  EXPECT_EQ(t.dtype(), fb::DType::F16);
  const float want[] = {1.0f, -2.0f, 65504.0f, std::numeric_limits<float>::infinity(), 0x1p-24f, -0.0f};
  ASSERT_EQ(t.numel(), 6);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(std::memcmp(&t.data()[i], &want[i], 4), 0) << i << ": " << t.data()[i];
}

TEST(HalfFiles, Bfloat16HasNoNpyTypeAndSaysSo) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  const std::string msg = expect_user_error([&] { fb::save_tensor(dir + "/b.npy", fb::rounded_to(fb::Tensor({2}, 1.5f), fb::DType::BF16)); }, {});
  EXPECT_TRUE(contains(msg, "bf16")) << msg;
  EXPECT_TRUE(contains(msg, "safetensors")) << msg;
  EXPECT_FALSE(fs::exists(dir + "/b.npy"));
  // A big-endian half array names its problem.
  std::string file = std::string("\x93NUMPY\x01\x00", 8);
  const std::string header = "{'descr': '>f2', 'fortran_order': False, 'shape': (1,), }\n";
  file += static_cast<char>(header.size());
  file += '\0';
  file += header + "xx";
  std::ofstream(dir + "/be.npy", std::ios::binary) << file;
  const std::string be = expect_user_error([&] { fb::load_tensor(dir + "/be.npy"); }, {});
  EXPECT_TRUE(contains(be, "big-endian")) << be;
  EXPECT_TRUE(contains(be, "'<f2'")) << be;
}

TEST(HalfFiles, SafetensorsHoldsEveryTypeAndRoundTrips) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  std::mt19937_64 rng(std::random_device{}());
  std::map<std::string, fb::Tensor> tensors;
  tensors["a_bf16"] = random_half_tensor(fb::DType::BF16, {4, 9}, rng);
  tensors["b_f16"] = random_half_tensor(fb::DType::F16, {5, 1, 3}, rng);
  tensors["c_f32"] = fb::Tensor({3}, std::vector<float>{1.0f, -0.0f, 1e-40f});
  tensors["d_empty_f16"] = fb::rounded_to(fb::Tensor({0, 2}), fb::DType::F16);
  const std::string path = dir + "/m.safetensors";
  fb::save_safetensors(path, tensors);
  const std::string bytes = read_bytes(path);
  for (const char* dtype : {"\"dtype\":\"BF16\"", "\"dtype\":\"F16\"", "\"dtype\":\"F32\""})
    EXPECT_TRUE(contains(bytes, dtype)) << dtype;
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(bytes.size() - 8 - header_len, 36u * 2 + 15u * 2 + 3u * 4);
  const auto back = fb::load_safetensors(path);
  ASSERT_EQ(back.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    expect_same_typed(back.at(name), t);
    expect_same_typed(fb::load_tensor(path + ":" + name), t);
  }
}

// Parameters for a bf16 block: a BF16 file as is, an F32 file rounded (as module.to(dtype)), an
// F16 file refused naming both types.
TEST(HalfFiles, ParamsInTheBlocksTypeOrRoundedFromF32) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  const fb::Plan plan = fb::lower(fb::parse_spec("input bf16[2, 3, 9]\nconv1d 4 3\ngroup_norm 2\nsilu\n", "p.block"));
  const fb::Pipeline& p = plan.pipeline;
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::map<std::string, fb::Tensor> f32 = {{"conv.weight", fb::Tensor({4, 3, 3})}, {"conv.bias", fb::Tensor({4})},
                                           {"norm.weight", fb::Tensor({4})}, {"norm.bias", fb::Tensor({4})}};
  for (auto& [name, t] : f32)
    for (float& v : t.vec()) v = u(rng);
  fb::save_safetensors(dir + "/f32.safetensors", f32);
  const fb::Params from_f32 = fb::load_params(p, dir + "/f32.safetensors");
  EXPECT_EQ(from_f32.conv_weight.dtype(), fb::DType::BF16);
  for (int64_t i = 0; i < 36; ++i)
    ASSERT_EQ(from_f32.conv_weight.data()[i], fb::round_to(fb::DType::BF16, f32["conv.weight"].data()[i]));

  std::map<std::string, fb::Tensor> bf16;
  for (const auto& [name, t] : f32) bf16[name] = fb::rounded_to(t, fb::DType::BF16);
  fb::save_safetensors(dir + "/bf16.safetensors", bf16);
  const fb::Params from_bf16 = fb::load_params(p, dir + "/bf16.safetensors");
  expect_same_typed(from_bf16.norm_bias, bf16["norm.bias"]);

  std::map<std::string, fb::Tensor> f16 = f32;
  f16["conv.weight"] = fb::rounded_to(f32["conv.weight"], fb::DType::F16);
  fb::save_safetensors(dir + "/f16.safetensors", f16);
  const std::string msg = expect_user_error([&] { fb::load_params(p, dir + "/f16.safetensors"); }, {});
  EXPECT_TRUE(contains(msg, "conv.weight has dtype F16")) << msg;
  EXPECT_TRUE(contains(msg, "bf16")) << msg;

  // init_params draws in the block's type, and run() refuses parameters of another type.
  const fb::Params init = fb::init_params(p, 3);
  EXPECT_EQ(init.norm_weight.dtype(), fb::DType::BF16);
  fb::Params wrong = init;
  wrong.conv_bias = fb::rounded_to(wrong.conv_bias, fb::DType::F32);
  const fb::Tensor x = fb::rounded_to(fb::Tensor(p.input_shape, 0.25f), fb::DType::BF16);
  const std::string run_msg = expect_user_error([&] { fb::run(plan, wrong, x, {fb::Device::Cpu}); }, {});
  EXPECT_TRUE(contains(run_msg, "conv.bias holds f32 values, but the block stores bf16")) << run_msg;
}

// A half-typed file for a float32 block: the hint names F32 once, not "F32 or F32".
TEST(HalfFiles, HalfParamsForAFloat32BlockAskForF32) {
  ScratchDir scratch;
  const fb::Plan plan = fb::lower(fb::parse_spec("input f32[1, 2, 6]\nconv1d 3 3\n", "p.block"));
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::map<std::string, fb::Tensor> half = {{"conv.weight", fb::Tensor({3, 2, 3})}, {"conv.bias", fb::Tensor({3})}};
  for (auto& [name, t] : half) {
    for (float& v : t.vec()) v = u(rng);
    t = fb::rounded_to(t, fb::DType::BF16);
  }
  fb::save_safetensors(scratch.path + "/bf16.safetensors", half);
  const std::string msg = expect_user_error([&] { fb::load_params(plan.pipeline, scratch.path + "/bf16.safetensors"); },
                                            {"has dtype BF16", "the block stores f32", "hint: save it as F32"});
  EXPECT_FALSE(contains(msg, "F32 or F32")) << msg;
}
