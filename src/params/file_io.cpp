// Positioned reads, checked sizes and atomic writes for tensor files (see file_io.hpp).
#include "params/file_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "fuseblock/error.hpp"
#include "ir/checked.hpp"
#include "params/temp_files.hpp"

namespace fuseblock::detail {
namespace {

std::string errno_text(int e) { return std::strerror(e); }

std::string parent_dir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

InputFile::InputFile(const std::string& path) : path_(path) {
  do {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd_ < 0 && errno == EINTR);
  if (fd_ < 0) throw UserError(path + ": cannot open: " + errno_text(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    int e = errno;
    ::close(fd_);
    throw UserError(path + ": cannot stat: " + errno_text(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw UserError(path + ": not a regular file");
  }
  size_ = static_cast<uint64_t>(st.st_size);
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

void InputFile::read_at(uint64_t offset, void* dst, uint64_t n, const std::string& what) const {
  if (offset > size_ || n > size_ - offset)
    throw UserError(path_ + ": truncated: " + what + " needs bytes " + std::to_string(offset) + ".." +
                    std::to_string(offset + n) + ", the file has " + std::to_string(size_) + " bytes");
  auto* p = static_cast<char*>(dst);
  uint64_t done = 0;
  while (done < n) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(n - done, uint64_t{1} << 30));
    ssize_t got = ::pread(fd_, p + done, want, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw UserError(path_ + ": read error in " + what + ": " + errno_text(errno));
    }
    if (got == 0)
      throw UserError(path_ + ": truncated while reading " + what + " (the file shrank while being read)");
    done += static_cast<uint64_t>(got);
  }
}

void write_file_atomically(const std::string& path, const std::vector<Chunk>& chunks) {
  // The temporary file lives in the target's folder so that rename() is atomic (same file system).
  // Its name is registered before the file exists (temp_files.hpp says why); a name that exists
  // already (left by a dead process whose id came back) is skipped.
  int fd = -1;
  std::string tmp;
  std::optional<TempFileRegistration> removed_if_interrupted;
  for (int attempt = 0; fd < 0; ++attempt) {
    tmp = unique_temp_name(parent_dir(path));
    removed_if_interrupted.emplace(tmp);
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      const int e = errno;
      removed_if_interrupted.reset();
      if (e != EEXIST || attempt >= 16)
        throw UserError(path + ": cannot create a temporary file in its folder: " + errno_text(e));
    }
  }
  auto fail = [&](const std::string& what, int e) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw UserError(path + ": " + what + ": " + errno_text(e));
  };
  // Created 0600 while it is filled; a tensor file is an ordinary file, readable by others.
  if (::fchmod(fd, 0644) != 0) fail("cannot set permissions", errno);
  for (const Chunk& c : chunks) {
    const char* p = static_cast<const char*>(c.data);
    size_t left = c.size;
    while (left > 0) {
      ssize_t put = ::write(fd, p, std::min<size_t>(left, size_t{1} << 30));
      if (put < 0) {
        if (errno == EINTR) continue;
        fail("write failed", errno);
      }
      p += put;
      left -= static_cast<size_t>(put);
    }
  }
  if (::fsync(fd) != 0) fail("fsync failed", errno);
  int rc = ::close(fd);
  fd = -1;
  if (rc != 0) fail("close failed", errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("cannot rename the temporary file over it", errno);
  // Make the rename itself durable; a failure here leaves a complete file, so it is not an error.
  int dfd = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

uint64_t checked_nbytes(const Shape& shape, uint64_t elem_size, const std::string& file, const std::string& what) {
  for (int64_t d : shape)
    if (d < 0) throw UserError(file + ": " + what + " has a negative dimension in shape " + shape_str(shape));
  std::optional<int64_t> n = fuseblock::checked_nbytes(shape, static_cast<int64_t>(elem_size));
  if (!n) throw UserError(file + ": " + what + " has shape " + shape_str(shape) + ", too large to address");
  return static_cast<uint64_t>(*n);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace fuseblock::detail
