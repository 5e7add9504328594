// Tensor files: NumPy .npy (float32 '<f4', float16 '<f2') and safetensors (F32, BF16, F16).
//
// A path names a file by its extension: `x.npy`, `x.safetensors` (a file holding exactly one
// tensor), or `x.safetensors:NAME` (the tensor NAME in a file holding several). Every problem with a
// file (cannot open, truncated, bad magic or header, another dtype, Fortran order, offsets out of
// range) is a UserError that names the file and what is wrong.
//
// A loaded tensor is tagged with the file's dtype (Tensor::dtype); a saved one is written in its
// tag's dtype: 2 bytes an element for bf16 and f16. numpy has no bfloat16, so saving a bf16 tensor
// as .npy is a UserError that suggests safetensors.
//
// Writes are atomic: the data goes to a temporary file in the same folder, is flushed to disk and
// renamed over the target, so a failure leaves either the old file or nothing, never half a file.
#pragma once
#include <map>
#include <string>

#include "fuseblock/tensor.hpp"

namespace fuseblock {

Tensor load_tensor(const std::string& path);
// `name` is the tensor's key in a .safetensors file (a `:NAME` suffix on the path wins over it);
// .npy files have no names.
void save_tensor(const std::string& path, const Tensor& t, const std::string& name = "output");

// Every tensor of a safetensors file (each F32, BF16 or F16); the "__metadata__" entry is skipped.
std::map<std::string, Tensor> load_safetensors(const std::string& path);
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors);

Tensor load_npy(const std::string& path);
void save_npy(const std::string& path, const Tensor& t);

}  // namespace fuseblock
