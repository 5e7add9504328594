#include "python/array_convert.hpp"

#include <algorithm>
#include <vector>

namespace nb = nanobind;

namespace fuseblock::python {

Tensor to_tensor(const HostArray& a) {
  Shape shape(a.ndim());
  for (size_t d = 0; d < a.ndim(); ++d) shape[d] = static_cast<int64_t>(a.shape(d));
  Tensor t(std::move(shape));
  std::copy_n(a.data(), a.size(), t.data());
  return t;
}

NumpyArray to_numpy(Tensor t) {
  auto* owned = new Tensor(std::move(t));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<Tensor*>(p); });
  std::vector<size_t> shape(owned->shape().begin(), owned->shape().end());
  return NumpyArray(owned->data(), shape.size(), shape.data(), owner);
}

}  // namespace fuseblock::python
