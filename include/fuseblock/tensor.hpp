// A dense, contiguous (C order) host tensor: the unit of data at every public surface of the C++
// library. Sizes and indices are 64-bit everywhere.
//
// Values are always held as float32, whatever the element type, so that every backend API reads
// and writes floats. The dtype tag says which element type the tensor stands for and promises
// that every value is exactly representable in it (a bf16 tensor holds only floats whose low 16
// bits are zero; an f16 tensor only floats that are values of IEEE half). round_to() makes that
// true; code that writes through data() on a bf16 or f16 tensor must keep it true. Files and the
// Python package store the tagged type (2 bytes an element for bf16 and f16).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "fuseblock/dtype.hpp"

namespace fuseblock {

using Shape = std::vector<int64_t>;

int64_t numel(const Shape& s);
std::string shape_str(const Shape& s);  // "[128, 3, 16, 64, 64]"

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(Shape shape);                 // zero-filled (std::vector); backends overwrite every element
  Tensor(Shape shape, float fill);
  Tensor(Shape shape, std::vector<float> data);  // data.size() must equal numel(shape)

  // The element type the values stand for (see the top of this file); F32 unless round_to() said otherwise.
  DType dtype() const { return dtype_; }
  // Rounds every value to `d` (round to nearest even) and tags the tensor with it. To F32 from a
  // 16-bit type only retags: the values are already float32 values.
  void round_to(DType d);

  const Shape& shape() const { return shape_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t d) const { return shape_.at(static_cast<size_t>(d)); }
  int64_t numel() const { return static_cast<int64_t>(data_.size()); }
  bool empty() const { return data_.empty(); }
  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  std::vector<float>& vec() { return data_; }
  const std::vector<float>& vec() const { return data_; }

 private:
  Shape shape_;
  std::vector<float> data_;
  DType dtype_ = DType::F32;
};

// A copy of t rounded to d (Tensor::round_to).
Tensor rounded_to(Tensor t, DType d);

}  // namespace fuseblock
