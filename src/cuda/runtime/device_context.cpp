// Device selection and properties (device_context.hpp).
#include "cuda/runtime/device_context.hpp"

#include <cstdlib>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "cuda/runtime/driver_api.hpp"
#include "fuseblock/error.hpp"

namespace fuseblock::cuda {
namespace {

struct Selected {
  DeviceInfo info;
  CUcontext ctx = nullptr;
};

int attr(CUdevice dev, CUdevice_attribute a) {
  int v = 0;
  FB_CU(cuDeviceGetAttribute(&v, a, dev));
  return v;
}

Selected open_device(int ordinal) {
  int count = 0;
  FB_CU(cuDeviceGetCount(&count));
  if (ordinal < 0 || ordinal >= count)
    throw UserError(fmt::format("there is no CUDA device {}: this machine has {} (cuda:0 .. cuda:{})", ordinal, count,
                                count - 1),
                    "pick an existing device (FUSEBLOCK_CUDA_DEVICE, or the tensor's device)");
  Selected s;
  CUdevice dev = 0;
  FB_CU(cuDeviceGet(&dev, ordinal));
  DeviceInfo& i = s.info;
  i.ordinal = ordinal;
  char name[256] = {};
  FB_CU(cuDeviceGetName(name, sizeof name, dev));
  i.name = name;
  i.cc_major = attr(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
  i.cc_minor = attr(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
  i.sm_count = attr(dev, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
  i.smem_per_block_optin = attr(dev, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
  i.smem_per_sm = attr(dev, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR);
  i.regs_per_sm = attr(dev, CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR);
  i.l2_bytes = attr(dev, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE);
  FB_CU(cuDeviceTotalMem(&i.total_mem, dev));
  FB_CU(cuDevicePrimaryCtxRetain(&s.ctx, dev));  // the context PyTorch and the runtime API use
  return s;
}

// Each device opened once per process (its primary context retained for the process's life);
// the map's nodes never move, so references stay valid.
const Selected& selected(int ordinal) {
  static std::mutex mu;
  static std::map<int, Selected> opened;
  std::lock_guard<std::mutex> lock(mu);
  auto it = opened.find(ordinal);
  if (it == opened.end()) it = opened.emplace(ordinal, open_device(ordinal)).first;
  return it->second;
}

int default_ordinal() { return device_ordinal_from_env(std::getenv("FUSEBLOCK_CUDA_DEVICE")); }

thread_local int thread_ordinal = -1;  // -1: the default

}  // namespace

int device_ordinal_from_env(const char* env) {
  if (env == nullptr || *env == '\0') return 0;
  const std::string v = env;
  int ordinal = 0;
  bool ok = v.size() <= 9;  // no device count comes near; keeps the sum below int's range
  for (char c : v) {
    ok = ok && c >= '0' && c <= '9';
    if (ok) ordinal = ordinal * 10 + (c - '0');
  }
  if (!ok)
    throw UserError(fmt::format("FUSEBLOCK_CUDA_DEVICE={} is not a device ordinal", v),
                    "set it to the device's number, e.g. FUSEBLOCK_CUDA_DEVICE=1 for cuda:1, or unset it for device 0");
  return ordinal;
}

std::string DeviceInfo::arch() const { return "sm_" + std::to_string(cc_major) + std::to_string(cc_minor); }

std::string DeviceInfo::describe() const {
  return fmt::format("{} ({}, {} SMs, {:.1f} GiB)", name, arch(), sm_count, total_mem / 1073741824.0);
}

const DeviceInfo& use_device(int ordinal) {
  driver();  // throws the plain "not available" error first
  const Selected& s = selected(ordinal);
  FB_CU(cuCtxSetCurrent(s.ctx));
  thread_ordinal = ordinal;
  return s.info;
}

const DeviceInfo& use_device() { return use_device(thread_ordinal >= 0 ? thread_ordinal : default_ordinal()); }

}  // namespace fuseblock::cuda
