// `run --output`: refused when it names a file the run reads (the input tensor, the parameters,
// the spec), by any path: writing it would replace what was read. Checked before any work.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace fuseblock::cli {

// `inputs` are (what, path) pairs, e.g. {"--input", "x.npy"}; paths that do not exist are skipped.
void check_output_is_not_an_input(const std::string& output,
                                  const std::vector<std::pair<std::string, std::string>>& inputs);

}  // namespace fuseblock::cli
