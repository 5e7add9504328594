// Bytes -> load_safetensors, and the one-tensor read behind load_tensor("x.safetensors"):
// tensors whose data size matches their shapes, or a UserError.
#include "fuseblock/io.hpp"
#include "fuzz_input.hpp"
#include "params/file_io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::MemoryFile f(data, size);
  fuzz::expect_only_user_errors([&] {
    for (const auto& [name, t] : fuseblock::load_safetensors(f.path()))
      if (t.numel() != fuseblock::numel(t.shape())) std::abort();
  });
  fuzz::expect_only_user_errors([&] { (void)fuseblock::detail::load_safetensors_tensor(f.path(), ""); });
  return 0;
}
