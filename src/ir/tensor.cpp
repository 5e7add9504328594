// Shapes and the host tensor (include/fuseblock/tensor.hpp).
#include "fuseblock/tensor.hpp"

#include <utility>

#include "fuseblock/error.hpp"

namespace fuseblock {

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    FB_ASSERT(d >= 0, "negative dimension in shape " + shape_str(s));
    n *= d;
  }
  return n;
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  out += "]";
  return out;
}

Tensor::Tensor(Shape shape) : shape_(std::move(shape)) {
  data_.resize(static_cast<size_t>(fuseblock::numel(shape_)));
}

Tensor::Tensor(Shape shape, float fill) : shape_(std::move(shape)) {
  data_.assign(static_cast<size_t>(fuseblock::numel(shape_)), fill);
}

Tensor::Tensor(Shape shape, std::vector<float> data) : shape_(std::move(shape)), data_(std::move(data)) {
  FB_ASSERT(static_cast<int64_t>(data_.size()) == fuseblock::numel(shape_),
            "tensor data has " + std::to_string(data_.size()) + " elements, shape " + shape_str(shape_) +
                " needs " + std::to_string(fuseblock::numel(shape_)));
}

void Tensor::round_to(DType d) {
  fuseblock::round_to(d, data_.data(), static_cast<int64_t>(data_.size()));
  dtype_ = d;
}

Tensor rounded_to(Tensor t, DType d) {
  t.round_to(d);
  return t;
}

}  // namespace fuseblock
