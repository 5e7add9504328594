// Splits one line of a block spec into tokens with their columns.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace fuseblock::spec {

struct Token {
  enum Kind { Word, Punct } kind;  // Word: names and numbers ("conv3d", "1e-5", "-inf"); Punct: = [ ] ( ) ,
  std::string text;
  int col;  // 1-based
};

// Comments start at '#'. Throws UserError for a character that belongs to no token.
std::vector<Token> tokenize_line(std::string_view line, int line_no, const std::string& source_name);

}  // namespace fuseblock::spec
