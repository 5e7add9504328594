#include "spec/tokenize.hpp"

#include <cctype>

#include "fuseblock/error.hpp"

namespace fuseblock::spec {

static bool is_word_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' || c == '+' ||
         c == '/' || c == ':' || c == '~';
}

std::vector<Token> tokenize_line(std::string_view line, int line_no, const std::string& source_name) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < line.size()) {
    char c = line[i];
    if (c == '#') break;
    if (std::isspace(static_cast<unsigned char>(c))) { ++i; continue; }
    int col = static_cast<int>(i) + 1;
    if (c == '=' || c == '[' || c == ']' || c == '(' || c == ')' || c == ',') {
      out.push_back({Token::Punct, std::string(1, c), col});
      ++i;
      continue;
    }
    if (c == '"' || c == '\'') {  // a quoted word (file names with spaces)
      size_t end = line.find(c, i + 1);
      if (end == std::string_view::npos)
        throw UserError("unterminated quoted string", "close it with " + std::string(1, c), {line_no, col},
                        source_name);
      out.push_back({Token::Word, std::string(line.substr(i + 1, end - i - 1)), col});
      i = end + 1;
      continue;
    }
    if (!is_word_char(c))
      throw UserError(std::string("unexpected character '") + c + "'",
                      "a spec line is: op name, then arguments like name=value (see `fuseblock --help-spec`)",
                      {line_no, col}, source_name);
    size_t start = i;
    while (i < line.size() && is_word_char(line[i])) ++i;
    out.push_back({Token::Word, std::string(line.substr(start, i - start)), col});
  }
  return out;
}

}  // namespace fuseblock::spec
