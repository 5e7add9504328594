#include "cli/output_path.hpp"

#include <filesystem>
#include <system_error>

#include <fmt/format.h>

#include "fuseblock/error.hpp"
#include "params/file_io.hpp"

namespace fuseblock::cli {

void check_output_is_not_an_input(const std::string& output,
                                  const std::vector<std::pair<std::string, std::string>>& inputs) {
  const std::string out_file = detail::tensor_file(output);  // also rejects an unknown file type early
  for (const auto& [what, path] : inputs) {
    if (path.empty()) continue;
    std::error_code ec;  // equivalent() fails when either file is missing: then they differ
    if (std::filesystem::equivalent(out_file, path, ec))
      throw UserError(fmt::format("--output {} is the same file as {} {}: writing it would replace what the run reads",
                                  output, what, path),
                      "write the output to another file");
  }
}

}  // namespace fuseblock::cli
