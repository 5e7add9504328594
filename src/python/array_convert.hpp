// numpy <-> fuseblock::Tensor. Inputs are copied into a Tensor (the C++ API takes owning,
// contiguous float32 tensors); outputs are handed to numpy without a copy, the array owning the
// Tensor's storage.
#pragma once
#include <nanobind/ndarray.h>

#include "fuseblock/tensor.hpp"

namespace fuseblock::python {

// A C-contiguous float32 array on the CPU, as the Python layer passes it (it checks the dtype
// and makes the array contiguous first, so nanobind converts nothing implicitly).
using HostArray = nanobind::ndarray<const float, nanobind::c_contig, nanobind::device::cpu>;
using NumpyArray = nanobind::ndarray<nanobind::numpy, float>;

Tensor to_tensor(const HostArray& a);
NumpyArray to_numpy(Tensor t);

}  // namespace fuseblock::python
