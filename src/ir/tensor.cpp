// Shapes and the host tensor (include/fuseblock/tensor.hpp).
#include "fuseblock/tensor.hpp"

#include <new>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>

#include "fuseblock/error.hpp"
#include "ir/checked.hpp"

namespace fuseblock {

// Shapes from users are checked where they enter (infer_shapes, the file readers, the Python
// API), so a shape that gets here negative or overflowing is a bug.
int64_t numel(const Shape& s) {
  std::optional<int64_t> n = checked_numel(s);
  FB_ASSERT(n.has_value(), "negative dimension or overflowing element count in shape " + shape_str(s));
  return *n;
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

// A shape that fits int64 may still not fit in memory: that is the user's shape to change, so
// it is a UserError saying how much was asked for, not std::bad_alloc's text.
static void allocate(std::vector<float>& data, const Shape& shape, float fill) {
  const int64_t n = fuseblock::numel(shape);
  try {
    data.assign(static_cast<size_t>(n), fill);
  } catch (const std::bad_alloc&) {
    throw UserError(fmt::format("out of host memory: a float32 tensor of shape {} needs {:.1f} GB", shape_str(shape), n * 4e-9),
                    "use a smaller shape");
  } catch (const std::length_error&) {
    throw UserError(fmt::format("a float32 tensor of shape {} ({} elements) is larger than this machine can address",
                                shape_str(shape), n),
                    "use a smaller shape");
  }
}

Tensor::Tensor(Shape shape) : shape_(std::move(shape)) { allocate(data_, shape_, 0.0f); }

Tensor::Tensor(Shape shape, float fill) : shape_(std::move(shape)) { allocate(data_, shape_, fill); }

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
