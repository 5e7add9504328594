// Block spec text -> Block IR. Checks the vocabulary, argument types and op order here; shape
// rules (channels divisible by groups, ...) are infer_shapes' job. Every error names line:col.
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>

#include <fmt/format.h>

#include "fuseblock/fuseblock.hpp"
#include "spec/limits.hpp"
#include "spec/op_table.hpp"
#include "spec/tokenize.hpp"

namespace fuseblock {
namespace {

using spec::ArgSpec;
using spec::ArgType;
using spec::Token;

// One argument as written: `name=value`, `name=(v, v)`, or a positional value.
struct RawArg {
  std::string name;            // empty when positional
  SourceLoc loc;               // of the name (or of the value when positional)
  std::vector<Token> values;   // one for a scalar, several for a tuple
  bool is_tuple = false;
};

class LineParser {
 public:
  LineParser(std::vector<Token> toks, int line, const std::string& source)
      : toks_(std::move(toks)), line_(line), source_(source) {}

  [[noreturn]] void fail(int col, const std::string& what, const std::string& hint = {}) const {
    throw UserError(what, hint, {line_, col}, source_);
  }
  SourceLoc at(int col) const { return {line_, col}; }

  const Token& keyword() const { return toks_[0]; }

  // Parses `[ a, b, ... ]` or `( a, b, ... )` starting at toks_[pos_]; returns the words.
  std::vector<Token> parse_list() {
    const Token& open = toks_[pos_++];
    const char close = open.text == "[" ? ']' : ')';
    std::vector<Token> items;
    while (true) {
      if (pos_ >= toks_.size()) fail(open.col, fmt::format("'{}' is never closed", open.text), fmt::format("add '{}'", close));
      const Token& t = toks_[pos_++];
      if (t.kind == Token::Punct && t.text[0] == close && items.empty()) return items;
      if (t.kind != Token::Word) fail(t.col, fmt::format("expected a value, found '{}'", t.text));
      items.push_back(t);
      if (pos_ >= toks_.size()) fail(open.col, fmt::format("'{}' is never closed", open.text), fmt::format("add '{}'", close));
      const Token& sep = toks_[pos_++];
      if (sep.kind == Token::Punct && sep.text[0] == close) return items;
      if (sep.text != ",") fail(sep.col, fmt::format("expected ',' or '{}', found '{}'", close, sep.text));
    }
  }

  std::vector<RawArg> parse_args(size_t start) {
    pos_ = start;
    std::vector<RawArg> args;
    while (pos_ < toks_.size()) {
      RawArg a;
      const Token& t = toks_[pos_];
      if (t.kind == Token::Word && pos_ + 1 < toks_.size() && toks_[pos_ + 1].text == "=") {
        a.name = t.text;
        a.loc = at(t.col);
        pos_ += 2;
        if (pos_ >= toks_.size()) fail(toks_[pos_ - 1].col, fmt::format("'{}=' has no value", a.name));
      } else {
        a.loc = at(t.col);
      }
      const Token& v = toks_[pos_];
      if (v.kind == Token::Punct && (v.text == "[" || v.text == "(")) {
        a.is_tuple = true;
        a.values = parse_list();
      } else if (v.kind == Token::Word) {
        a.values.push_back(v);
        ++pos_;
      } else {
        fail(v.col, fmt::format("expected a value, found '{}'", v.text));
      }
      args.push_back(std::move(a));
    }
    return args;
  }

  const std::vector<Token>& tokens() const { return toks_; }

 private:
  std::vector<Token> toks_;
  size_t pos_ = 0;
  int line_;
  const std::string& source_;
};

std::optional<double> to_double(const std::string& s) {
  std::string t = s;
  bool neg = false;
  if (!t.empty() && (t[0] == '-' || t[0] == '+')) neg = t[0] == '-', t = t.substr(1);
  double v;
  if (t == "inf" || t == "infinity") v = std::numeric_limits<double>::infinity();
  else if (t == "nan") v = std::numeric_limits<double>::quiet_NaN();
  else {
    auto r = std::from_chars(t.data(), t.data() + t.size(), v);
    if (r.ec != std::errc() || r.ptr != t.data() + t.size()) return std::nullopt;
  }
  return neg ? -v : v;
}

std::optional<int64_t> to_int(const std::string& s) {
  int64_t v;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// The message for a word to_int rejected: an integer past int64's range is not "not an integer".
std::string int_error(const std::string& text, const std::string& otherwise) {
  int64_t v;
  if (std::from_chars(text.data(), text.data() + text.size(), v).ec == std::errc::result_out_of_range)
    return fmt::format("{} does not fit in a 64-bit integer (at most {})", text, std::numeric_limits<int64_t>::max());
  return otherwise;
}

// Reads the arguments of one op line into `op`, against the op's ArgSpec list.
class ArgReader {
 public:
  ArgReader(LineParser& lp, const spec::OpSpec& spec, std::vector<RawArg> args)
      : lp_(lp), spec_(spec) {
    size_t positional = 0;
    bool seen_named = false;
    for (RawArg& a : args) {
      if (a.name.empty()) {
        if (seen_named) lp_.fail(a.loc.col, "a positional argument cannot follow a named one", "write it as name=value");
        if (positional >= spec.args.size())
          lp_.fail(a.loc.col, fmt::format("'{}' takes {} positional argument{}", spec.keyword, spec.args.size(),
                                          spec.args.size() == 1 ? "" : "s"),
                   usage());
        a.name = spec.args[positional++].name;
      } else {
        seen_named = true;
        if (!find_spec(a.name)) {
          std::vector<std::string> names;
          for (const ArgSpec& s : spec.args) names.push_back(s.name);
          std::string near = spec::closest(a.name, names);
          lp_.fail(a.loc.col, fmt::format("'{}' has no argument '{}'", spec.keyword, a.name),
                   near.empty() ? usage() : fmt::format("did you mean '{}'? {}", near, usage()));
        }
      }
      if (given_.count(a.name)) lp_.fail(a.loc.col, fmt::format("argument '{}' given twice", a.name));
      given_[a.name] = std::move(a);
    }
    for (const ArgSpec& s : spec.args)
      if (s.required && !given_.count(s.name))
        lp_.fail(lp_.keyword().col, fmt::format("'{}' needs the argument '{}'", spec.keyword, s.name), usage());
  }

  std::string usage() const {
    std::string u = fmt::format("usage: {}", spec_.keyword);
    for (const ArgSpec& s : spec_.args) u += s.required ? fmt::format(" {}=...", s.name) : fmt::format(" [{}=...]", s.name);
    return u;
  }

  bool has(const char* name) const { return given_.count(name) != 0; }
  SourceLoc loc(const char* name) const { return given_.at(name).loc; }
  void record_locs(Op& op) const {
    for (const auto& [name, a] : given_) op.arg_locs[name] = a.loc;
  }

  const Token& scalar(const char* name) const {
    const RawArg& a = given_.at(name);
    if (a.is_tuple || a.values.size() != 1) lp_.fail(a.loc.col, fmt::format("'{}' takes a single value, not a tuple", name));
    return a.values[0];
  }

  double f(const char* name, double dflt) const {
    if (!has(name)) return dflt;
    const Token& t = scalar(name);
    auto v = to_double(t.text);
    if (!v) lp_.fail(t.col, fmt::format("'{}' expects a number, got '{}'", name, t.text));
    return *v;
  }

  int64_t i(const char* name, int64_t dflt) const {
    if (!has(name)) return dflt;
    const Token& t = scalar(name);
    auto v = to_int(t.text);
    if (!v) lp_.fail(t.col, int_error(t.text, fmt::format("'{}' expects an integer, got '{}'", name, t.text)));
    return *v;
  }

  // An unsigned 64-bit integer (seeds and offsets, as the IR holds them): [0, 2^64).
  uint64_t u(const char* name, uint64_t dflt, const std::string& if_negative) const {
    if (!has(name)) return dflt;
    const Token& t = scalar(name);
    const char* end = t.text.data() + t.text.size();
    uint64_t v = 0;
    const bool minus = !t.text.empty() && t.text[0] == '-';
    auto r = std::from_chars(t.text.data() + (minus ? 1 : 0), end, v);
    if (r.ec == std::errc() && r.ptr == end && minus && t.text.size() > 1) lp_.fail(loc(name).col, if_negative);
    if (r.ec == std::errc::result_out_of_range && r.ptr == end)
      lp_.fail(t.col, fmt::format("{} does not fit in an unsigned 64-bit integer (at most {})", t.text,
                                  std::numeric_limits<uint64_t>::max()));
    if (r.ec != std::errc() || r.ptr != end || minus)
      lp_.fail(t.col, fmt::format("'{}' expects an integer, got '{}'", name, t.text));
    return v;
  }

  bool b(const char* name, bool dflt) const {
    if (!has(name)) return dflt;
    const Token& t = scalar(name);
    if (t.text == "true" || t.text == "True" || t.text == "1") return true;
    if (t.text == "false" || t.text == "False" || t.text == "0") return false;
    lp_.fail(t.col, fmt::format("'{}' expects true or false, got '{}'", name, t.text));
  }

  std::string word(const char* name, const std::string& dflt) const {
    return has(name) ? scalar(name).text : dflt;
  }

  // An int or a tuple of exactly `dims` ints (PyTorch's _single/_pair/_triple).
  std::array<int64_t, 3> tuple(const char* name, int dims, int64_t dflt) const {
    std::array<int64_t, 3> out{dflt, dflt, dflt};
    if (!has(name)) return out;
    const RawArg& a = given_.at(name);
    if (a.values.size() == 1 && !a.is_tuple) {
      auto v = to_int(a.values[0].text);
      if (!v) lp_.fail(a.values[0].col, int_error(a.values[0].text, fmt::format("'{}' expects an integer or a tuple of {}, got '{}'", name, dims, a.values[0].text)));
      out = {*v, *v, *v};
      return out;
    }
    if (static_cast<int>(a.values.size()) != dims)
      lp_.fail(a.loc.col, fmt::format("'{}' has {} entries; conv{}d takes {}", name, a.values.size(), dims, dims),
               fmt::format("write {}={} or a tuple of {} integers", name, dflt, dims));
    for (int d = 0; d < dims; ++d) {
      auto v = to_int(a.values[static_cast<size_t>(d)].text);
      if (!v) lp_.fail(a.values[static_cast<size_t>(d)].col, int_error(a.values[static_cast<size_t>(d)].text, fmt::format("'{}' expects integers, got '{}'", name, a.values[static_cast<size_t>(d)].text)));
      out[static_cast<size_t>(d)] = *v;
    }
    return out;
  }

 private:
  const ArgSpec* find_spec(const std::string& name) const {
    for (const ArgSpec& s : spec_.args)
      if (name == s.name) return &s;
    return nullptr;
  }
  LineParser& lp_;
  const spec::OpSpec& spec_;
  std::map<std::string, RawArg> given_;
};

// Where an op may stand: input, conv, group_norm, pointwise ops and dropout in any order.
enum class Stage { Start, Input, Conv, ChannelAdd, Norm, Pointwise };

// `add_per_sample_channel` (no arguments) marks the conv just before it; its place is right there.
void parse_channel_add(LineParser& lp, const spec::OpSpec& spec, Stage stage, Block& b) {
  ArgReader r(lp, spec, lp.parse_args(1));
  const Token& kw = lp.keyword();
  const char* rule = "add_per_sample_channel comes right after the conv, before the norm (conv1(x) + temb[:, :, None, None])";
  if (stage == Stage::Input) lp.fail(kw.col, "add_per_sample_channel needs a convolution before it", rule);
  Op& conv = b.ops.at(1);  // after the input, the block's one conv
  if (conv.conv.channel_add) {
    const SourceLoc first = conv.arg_loc("add_per_sample_channel");
    lp.fail(kw.col, fmt::format("add_per_sample_channel is given twice: first at line {}, column {}", first.line, first.col),
            "a block adds one [N, C_out] input; add the tensors before the run");
  }
  if (stage != Stage::Conv) lp.fail(kw.col, "add_per_sample_channel must come right after the convolution", rule);
  conv.conv.channel_add = true;
  conv.arg_locs["add_per_sample_channel"] = lp.at(kw.col);
}

// A norm's `param_dtype=` (f32, bf16, f16): which combinations PyTorch accepts is infer_shapes'
// check, since the Python API may still change the block's storage type after parsing.
std::optional<DType> parse_param_dtype(const LineParser& lp, const ArgReader& r) {
  if (!r.has("param_dtype")) return std::nullopt;
  const Token& t = r.scalar("param_dtype");
  if (const std::optional<DType> d = dtype_from_spec_name(t.text)) return d;
  std::vector<std::string> names;
  for (const DTypeInfo& row : dtype_table()) names.insert(names.end(), {row.spec_name, row.long_name});
  const std::string near = spec::closest(t.text, names);
  const std::string hint = "the norm parameters' element type: param_dtype=f32 keeps them in float32 in a bf16 or f16 block";
  lp.fail(t.col, fmt::format("unknown param_dtype '{}'; the dtypes are {}", t.text, dtype_spec_names()),
          near.empty() ? hint : fmt::format("did you mean '{}'? {}", near, hint));
}

Op parse_op(LineParser& lp, const spec::OpSpec& spec) {
  ArgReader r(lp, spec, lp.parse_args(1));
  Op op;
  op.kind = spec.kind;
  op.loc = lp.at(lp.keyword().col);
  r.record_locs(op);
  PointwiseAttrs& pw = op.pw;
  switch (spec.kind) {
    case OpKind::Conv: {
      ConvAttrs& c = op.conv;
      c.dims = spec.conv_dims;
      c.out_channels = r.i("out_channels", 0);
      c.kernel = r.tuple("kernel_size", c.dims, 1);
      c.stride = r.tuple("stride", c.dims, 1);
      c.padding = r.tuple("padding", c.dims, 0);
      c.dilation = r.tuple("dilation", c.dims, 1);
      c.bias = r.b("bias", true);
      c.in_channels = r.i("in_channels", 0);
      if (r.i("groups", 1) != 1)
        lp.fail(r.loc("groups").col, "grouped convolution (groups != 1) is not supported yet", "use groups=1");
      break;
    }
    case OpKind::GroupNorm:
      if (std::string(spec.keyword) == "instance_norm") {
        // nn.InstanceNormNd's defaults: affine=False; running statistics are not modelled.
        op.norm.instance = true;
        op.norm.num_groups = 0;  // the conv's channels, set by infer_shapes
        op.norm.eps = r.f("eps", 1e-5);
        op.norm.affine = r.b("affine", false);
        op.norm.num_channels = r.i("num_features", 0);
        op.norm.param_dtype = parse_param_dtype(lp, r);
        r.f("momentum", 0.1);  // read for its type only: it updates running statistics, which are not kept
        if (r.b("track_running_stats", false))
          lp.fail(r.loc("track_running_stats").col, "instance_norm track_running_stats=true is not supported",
                  "fuseblock normalizes with each sample's own statistics (track_running_stats=false, "
                  "PyTorch's default); running statistics are out of scope");
        break;
      }
      op.norm.num_groups = r.i("num_groups", 1);
      op.norm.eps = r.f("eps", 1e-5);
      op.norm.affine = r.b("affine", true);
      op.norm.num_channels = r.i("num_channels", 0);
      op.norm.param_dtype = parse_param_dtype(lp, r);
      break;
    case OpKind::Minimum: case OpKind::Maximum: case OpKind::Add: case OpKind::Sub: case OpKind::Mul: case OpKind::Div:
      pw.a = r.f("other", 0.0), pw.has_a = true;
      break;
    case OpKind::Clamp:
      pw.has_a = r.has("min"), pw.a = r.f("min", 0.0);
      pw.has_b = r.has("max"), pw.b = r.f("max", 0.0);
      if (!pw.has_a && !pw.has_b)
        lp.fail(lp.keyword().col, "clamp needs at least one of min and max (as torch.clamp)", "e.g. clamp min=0.0 max=1.0");
      break;
    case OpKind::PRelu:
      pw.num_parameters = r.i("num_parameters", 1);
      pw.a = r.f("init", 0.25);  // has_a stays false: the slope is the parameter, init only fills it
      if (pw.num_parameters < 1)
        lp.fail(r.loc("num_parameters").col, fmt::format("prelu num_parameters must be 1 or the channel count, got {}", pw.num_parameters),
                "as nn.PReLU: num_parameters=1 (one slope) or C (one per channel)");
      break;
    case OpKind::LeakyRelu: pw.a = r.f("negative_slope", 0.01), pw.has_a = true; break;
    case OpKind::Elu: pw.a = r.f("alpha", 1.0), pw.has_a = true; break;
    case OpKind::Hardtanh:
      pw.a = r.f("min_val", -1.0), pw.b = r.f("max_val", 1.0), pw.has_a = pw.has_b = true;
      if (!(pw.b > pw.a))  // nn.Hardtanh asserts max_val > min_val (NaN bounds fail it too)
        lp.fail(r.has("max_val") ? r.loc("max_val").col : lp.keyword().col,
                fmt::format("hardtanh needs max_val > min_val, got min_val={} max_val={}", pw.a, pw.b),
                "as nn.Hardtanh; for min > max as torch.clamp computes it, write clamp min=... max=...");
      break;
    case OpKind::Softplus: pw.a = r.f("beta", 1.0), pw.b = r.f("threshold", 20.0), pw.has_a = pw.has_b = true; break;
    case OpKind::Gelu: {
      std::string ap = r.word("approximate", "none");
      if (ap != "none" && ap != "tanh")
        lp.fail(r.loc("approximate").col, fmt::format("gelu approximate='{}' is not one of none, tanh", ap),
                "as nn.GELU: approximate=none (erf) or approximate=tanh");
      pw.tanh_approx = ap == "tanh";
      break;
    }
    case OpKind::Dropout: {
      op.dropout.p = r.f("p", 0.5);
      op.dropout.training = r.b("training", true);
      op.dropout.seed = r.u("seed", 0, "dropout seed and offset must be >= 0");
      op.dropout.offset = r.u("offset", 0, "dropout seed and offset must be >= 0");
      if (!(op.dropout.p >= 0.0 && op.dropout.p <= 1.0))
        lp.fail(r.loc("p").col, fmt::format("dropout probability has to be between 0 and 1, but got {}", op.dropout.p),
                "as nn.Dropout: 0 <= p <= 1");
      break;
    }
    default: break;
  }
  return op;
}

Op parse_input(LineParser& lp) {
  const auto& t = lp.tokens();
  Op op;
  op.kind = OpKind::Input;
  op.loc = lp.at(t[0].col);
  const std::string hint = "write the input as: input f32[N, C, D, H, W] (1 to 3 spatial dims)";
  if (t.size() < 2 || t[1].kind != Token::Word) lp.fail(t[0].col, "input needs a dtype and shape", hint);
  const std::string& dt = t[1].text;
  const std::optional<DType> dtype = dtype_from_spec_name(dt);
  if (!dtype) {
    std::vector<std::string> names;
    for (const DTypeInfo& r : dtype_table()) names.insert(names.end(), {r.spec_name, r.long_name});
    const std::string near = spec::closest(dt, names);
    lp.fail(t[1].col, fmt::format("unknown dtype '{}'; the dtypes are {}", dt, dtype_spec_names()),
            near.empty() ? hint : fmt::format("did you mean '{}'? {}", near, hint));
  }
  op.dtype = *dtype;
  if (t.size() < 3 || t[2].text != "[") lp.fail(t[1].col + static_cast<int>(dt.size()), "expected '[' and the shape after the dtype", hint);
  std::vector<RawArg> args = lp.parse_args(2);
  if (args.size() != 1 || !args[0].is_tuple) lp.fail(t[2].col, "unexpected text after the input shape", hint);
  for (const Token& v : args[0].values) {
    auto n = to_int(v.text);
    if (!n || *n < 0) lp.fail(v.col, int_error(v.text, fmt::format("a dimension must be a non-negative integer, got '{}'", v.text)));
    op.shape.push_back(*n);
  }
  if (op.shape.size() < 3 || op.shape.size() > 5)
    lp.fail(t[2].col, fmt::format("input has {} dimensions; a block takes 3 to 5 ([N, C, spatial...])", op.shape.size()), hint);
  op.arg_locs["shape"] = lp.at(t[2].col);
  return op;
}

void parse_params(LineParser& lp, ParamSource& ps) {
  static const spec::OpSpec params_spec{"params", OpKind::Input, 0,
                                        {{"seed", ArgType::Int, false}, {"file", ArgType::Word, false}}, ""};
  if (ps.loc.known())
    lp.fail(lp.keyword().col, fmt::format("params is given twice: first at line {}, column {}", ps.loc.line, ps.loc.col),
            "keep one params line");
  ArgReader r(lp, params_spec, lp.parse_args(1));
  if (r.has("seed") && r.has("file")) lp.fail(r.loc("file").col, "params takes seed= or file=, not both");
  ps.init_seed = r.u("seed", 0, "params seed must be >= 0");
  ps.safetensors = r.word("file", "");
  ps.loc = lp.at(lp.keyword().col);
}

// Each prelu's slopes are a parameter of their own: its index among the block's prelu ops names it.
void number_prelu_parameters(Block& b) {
  int count = 0;
  for (const Op& op : b.ops) count += op.kind == OpKind::PRelu;
  int index = 0;
  for (Op& op : b.ops)
    if (op.kind == OpKind::PRelu) op.pw.param_index = index++, op.pw.param_count = count;
}

const char* stage_rule =
    "a block is: input, conv1d|conv2d|conv3d, optional group_norm or instance_norm, pointwise ops and dropout";

// Two dropouts at one (seed, offset) draw the same mask: the second would drop exactly what the
// first dropped and scale the kept values twice, where PyTorch's two nn.Dropout are independent.
void reject_a_repeated_mask(const LineParser& lp, const Block& b, const Op& op) {
  for (const Op& prev : b.ops)
    if (prev.kind == OpKind::Dropout && prev.dropout.seed == op.dropout.seed && prev.dropout.offset == op.dropout.offset)
      lp.fail(op.loc.col, fmt::format("this dropout has the same seed and offset as the dropout on line {}: it would draw the same mask", prev.loc.line),
              "give it another seed= or offset= (PyTorch draws each dropout's mask independently)");
}

}  // namespace

Block parse_spec(std::string_view text, const std::string& source_name) {
  if (text.size() > spec::kMaxSpecBytes)
    throw UserError(fmt::format("the spec has more than {} bytes (1 MiB), the most fuseblock reads", spec::kMaxSpecBytes),
                    "a block spec is a few lines: input, conv, group_norm, pointwise ops, dropout", {1, 1}, source_name);
  Block b;
  b.source_name = source_name;
  Stage stage = Stage::Start;
  int line_no = 0;
  size_t pos = 0;
  SourceLoc last_loc;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = end + 1;
    ++line_no;
    auto toks = spec::tokenize_line(line, line_no, source_name);
    if (toks.empty()) continue;
    LineParser lp(std::move(toks), line_no, source_name);
    const Token& kw = lp.keyword();
    last_loc = lp.at(kw.col);
    if (kw.kind != Token::Word) lp.fail(kw.col, fmt::format("a line must start with an op name, found '{}'", kw.text), stage_rule);
    if (kw.text == "params") { parse_params(lp, b.params); continue; }
    if (b.ops.size() >= spec::kMaxOps)
      lp.fail(kw.col, fmt::format("the block has more than {} ops, the most fuseblock plans", spec::kMaxOps),
              "merge the pointwise ops, or split the block");
    if (kw.text == "input") {
      if (stage != Stage::Start) lp.fail(kw.col, "the input is declared twice, or after an op", stage_rule);
      b.ops.push_back(parse_input(lp));
      stage = Stage::Input;
      continue;
    }
    const spec::OpSpec* spec = spec::find_op(kw.text);
    if (!spec) {
      std::vector<std::string> names{"input", "params"};
      for (const auto& s : spec::op_table()) names.push_back(s.keyword);
      std::string near = spec::closest(kw.text, names);
      lp.fail(kw.col, fmt::format("unknown op '{}'", kw.text),
              near.empty() ? "see `fuseblock --help-spec` for the ops" : fmt::format("did you mean '{}'?", near));
    }
    if (stage == Stage::Start) lp.fail(kw.col, "the block must start with its input", "add a first line like: input f32[1, 3, 16, 16]");
    if (spec->kind == OpKind::Conv && spec->conv_dims == 0) {  // add_per_sample_channel
      parse_channel_add(lp, *spec, stage, b);
      if (stage == Stage::Conv) stage = Stage::ChannelAdd;
      continue;
    }
    switch (spec->kind) {
      case OpKind::Conv:
        if (stage != Stage::Input) lp.fail(kw.col, "a block has exactly one convolution, right after the input", stage_rule);
        stage = Stage::Conv;
        break;
      case OpKind::GroupNorm:
        if (stage != Stage::Conv && stage != Stage::ChannelAdd)
          lp.fail(kw.col, kw.text + (stage == Stage::Input ? " needs a convolution before it" : " must come right after the convolution"), stage_rule);
        stage = Stage::Norm;
        break;
      case OpKind::Dropout:  // anywhere in the chain (MONAI's norm -> dropout -> activation order)
        if (stage == Stage::Input) lp.fail(kw.col, "dropout needs a convolution before it", stage_rule);
        stage = Stage::Pointwise;
        break;
      default:
        if (stage == Stage::Input) lp.fail(kw.col, fmt::format("'{}' needs a convolution before it", kw.text), stage_rule);
        stage = Stage::Pointwise;
        break;
    }
    Op op = parse_op(lp, *spec);
    if (op.kind == OpKind::Dropout) reject_a_repeated_mask(lp, b, op);
    b.ops.push_back(std::move(op));
  }
  number_prelu_parameters(b);
  if (stage == Stage::Start)
    throw UserError("the spec is empty", "a block starts with a line like: input f32[128, 3, 16, 64, 64]", {1, 1}, source_name);
  if (stage == Stage::Input)
    throw UserError("the block has no convolution", "add a line like: conv3d out_channels=16 kernel_size=3",
                    {last_loc.line, last_loc.col}, source_name);
  return b;
}

}  // namespace fuseblock
