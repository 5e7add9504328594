// The spec's vocabulary: each op keyword, its kind and its arguments in positional order, with
// the defaults PyTorch uses. parse.cpp reads lines against this table.
#pragma once
#include <string>
#include <vector>

#include "fuseblock/ir.hpp"

namespace fuseblock::spec {

enum class ArgType { Int, IntTuple, Float, Bool, Word };

struct ArgSpec {
  const char* name;
  ArgType type;
  bool required;
};

struct OpSpec {
  const char* keyword;
  OpKind kind;
  int conv_dims;  // 1..3 for conv1d..conv3d, else 0
  std::vector<ArgSpec> args;
  const char* help;  // one line for --help-spec
};

const std::vector<OpSpec>& op_table();
const OpSpec* find_op(const std::string& keyword);
// The closest keyword by edit distance (for "did you mean"), or "" when nothing is close.
std::string closest(const std::string& word, const std::vector<std::string>& candidates);
// Every spec keyword and its arguments, for `fuseblock --help-spec`.
std::string spec_reference();

}  // namespace fuseblock::spec
