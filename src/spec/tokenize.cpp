#include "spec/tokenize.hpp"

#include <cctype>
#include <cstdio>

#include "fuseblock/error.hpp"

namespace fuseblock::spec {

static bool is_word_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' || c == '+' ||
         c == '/' || c == ':' || c == '~';
}

// A character as an error message shows it: itself when printable ASCII, else its byte in hex,
// so that the message stays valid UTF-8 (Python decodes it) and a control byte cannot garble a terminal.
static std::string shown(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) return std::string(1, c);
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\x%02x", u);
  return buf;
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
      throw UserError("unexpected character '" + shown(c) + "'",
                      "a spec line is: op name, then arguments like name=value (see `fuseblock --help-spec`)",
                      {line_no, col}, source_name);
    size_t start = i;
    while (i < line.size() && is_word_char(line[i])) ++i;
    out.push_back({Token::Word, std::string(line.substr(start, i - start)), col});
  }
  return out;
}

}  // namespace fuseblock::spec
