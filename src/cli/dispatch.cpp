#include <functional>
#include <map>
#include <string>

#include "cli/commands.hpp"
#include "cli/registry.hpp"

namespace fuseblock::cli {

std::map<std::string, std::function<int()>>& registry() {
  static std::map<std::string, std::function<int()>> r;
  return r;
}

int dispatch(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands()) return registry().at(sub->get_name())();
  return 0;
}

}  // namespace fuseblock::cli
