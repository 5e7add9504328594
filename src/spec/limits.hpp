// Limits on a block spec where its size is not the point: a block is a handful of lines, so
// these only stop runaway input (a generated file gone wrong, a fuzzer) early and with a clear
// error. docs/spec.md states them.
#pragma once
#include <cstddef>

namespace fuseblock::spec {

constexpr size_t kMaxSpecBytes = size_t{1} << 20;  // 1 MiB of spec text
constexpr size_t kMaxOps = 1024;                    // ops in one block, the input line included

}  // namespace fuseblock::spec
