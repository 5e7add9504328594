// A dense, contiguous (C order) host tensor of float32: the unit of data at every public surface
// of the C++ library. Sizes and indices are 64-bit everywhere.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

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
};

}  // namespace fuseblock
