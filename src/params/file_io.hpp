// Byte-level file access shared by the .npy and safetensors readers and writers: positioned reads
// that turn a short file into a UserError naming it, checked size arithmetic for shapes read from
// untrusted headers, and atomic writes (temp file in the same folder, fsync, rename).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuseblock/tensor.hpp"

namespace fuseblock::detail {

class InputFile {
 public:
  explicit InputFile(const std::string& path);  // UserError when it cannot be opened
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  // Reads exactly n bytes at `offset`; a file too short is a UserError saying what was being read.
  void read_at(uint64_t offset, void* dst, uint64_t n, const std::string& what) const;

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

struct Chunk {
  const void* data;
  size_t size;
};
// Writes the chunks, in order, as the new contents of `path`, atomically.
void write_file_atomically(const std::string& path, const std::vector<Chunk>& chunks);

// numel(shape) * elem_size, or a UserError (naming `file` and `what`) when it overflows int64.
uint64_t checked_nbytes(const Shape& shape, uint64_t elem_size, const std::string& file, const std::string& what);

bool ends_with(const std::string& s, const std::string& suffix);

// The file a tensor path names: "x.safetensors:NAME" -> "x.safetensors" (tensor_io.cpp).
std::string tensor_file(const std::string& tensor_path);

// One tensor of a safetensors file; `name` empty means "the only one there is" (safetensors.cpp).
Tensor load_safetensors_tensor(const std::string& path, const std::string& name);

}  // namespace fuseblock::detail
