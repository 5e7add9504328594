// Bytes -> load_npy: a Tensor whose data size matches its shape, or a UserError.
#include "fuseblock/io.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::MemoryFile f(data, size);
  fuzz::expect_only_user_errors([&] {
    fuseblock::Tensor t = fuseblock::load_npy(f.path());
    if (t.numel() != fuseblock::numel(t.shape())) std::abort();
  });
  return 0;
}
