// Subcommand name -> what it runs, filled by the add_*_command functions.
#pragma once
#include <functional>
#include <map>
#include <string>

namespace fuseblock::cli {
std::map<std::string, std::function<int()>>& registry();
}
