// Reading .nv.info from a cubin (cubin_info.hpp). A cubin is an ELF64 file; its ".nv.info"
// section is a list of attributes, each a format byte, an attribute byte and, for the format
// EIFMT_SVAL (4), a 16-bit size and that many bytes (for per-kernel values: the kernel's symbol
// index and a 32-bit value); the other formats carry 2 bytes inline.
#include "cuda/runtime/cubin_info.hpp"

#include <cstdint>
#include <cstring>
#include <vector>

namespace fuseblock::cuda {
namespace {

constexpr uint8_t kSval = 0x04;
constexpr uint8_t kRegCount = 0x2f;
constexpr uint8_t kFrameSize = 0x11;

template <class T>
bool read_at(const std::string& b, size_t at, T* out) {
  if (at > b.size() || b.size() - at < sizeof(T)) return false;
  std::memcpy(out, b.data() + at, sizeof(T));
  return true;
}

struct Section {
  uint32_t name = 0, type = 0;
  uint64_t offset = 0, size = 0;
  uint32_t link = 0;
  uint64_t entsize = 0;
};

}  // namespace

std::map<std::string, CubinKernelInfo> read_cubin_info(const std::string& b) {
  std::map<std::string, CubinKernelInfo> out;
  if (b.size() < 64 || std::memcmp(b.data(), "\x7f" "ELF", 4) != 0 || b[4] != 2) return out;
  uint64_t shoff = 0;
  uint16_t shentsize = 0, shnum = 0, shstrndx = 0;
  if (!read_at(b, 0x28, &shoff) || !read_at(b, 0x3a, &shentsize) || !read_at(b, 0x3c, &shnum) ||
      !read_at(b, 0x3e, &shstrndx) || shentsize < 64)
    return out;
  std::vector<Section> secs(shnum);
  for (uint16_t i = 0; i < shnum; ++i) {
    const size_t at = shoff + static_cast<size_t>(i) * shentsize;
    Section& s = secs[i];
    if (!read_at(b, at, &s.name) || !read_at(b, at + 4, &s.type) || !read_at(b, at + 24, &s.offset) ||
        !read_at(b, at + 32, &s.size) || !read_at(b, at + 40, &s.link) || !read_at(b, at + 56, &s.entsize))
      return out;
    const bool nobits = s.type == 8;  // SHT_NOBITS (.nv.shared.*): no bytes in the file
    if (!nobits && (s.offset > b.size() || b.size() - s.offset < s.size)) return out;
  }
  if (shstrndx >= shnum) return out;
  auto cstr = [&](const Section& strtab, uint32_t off) -> std::string {
    if (off >= strtab.size) return {};
    const char* p = b.data() + strtab.offset + off;
    return std::string(p, strnlen(p, strtab.size - off));
  };
  const Section* symtab = nullptr;
  const Section* info = nullptr;
  for (const Section& s : secs) {
    const std::string n = cstr(secs[shstrndx], s.name);
    if (s.type == 2 /* SHT_SYMTAB */) symtab = &s;
    if (n == ".nv.info") info = &s;
  }
  if (!symtab || !info || symtab->link >= shnum || symtab->entsize < 24) return out;
  const Section& strtab = secs[symtab->link];
  auto symbol_name = [&](uint32_t index) -> std::string {
    uint32_t name = 0;
    if (!read_at(b, symtab->offset + static_cast<size_t>(index) * symtab->entsize, &name)) return {};
    return cstr(strtab, name);
  };
  for (size_t at = info->offset, end = info->offset + info->size; at + 4 <= end;) {
    const uint8_t fmt = static_cast<uint8_t>(b[at]), attr = static_cast<uint8_t>(b[at + 1]);
    uint16_t size = 0;
    read_at(b, at + 2, &size);
    if (fmt != kSval) {
      at += 4;
      continue;
    }
    uint32_t sym = 0, value = 0;
    if (size >= 8 && read_at(b, at + 4, &sym) && read_at(b, at + 8, &value)) {
      if (attr == kRegCount) out[symbol_name(sym)].registers = static_cast<int>(value);
      if (attr == kFrameSize) out[symbol_name(sym)].frame_bytes = static_cast<int>(value);
    }
    at += 4 + size;
  }
  return out;
}

}  // namespace fuseblock::cuda
