// Device selection and properties (device_context.hpp).
#include "cuda/runtime/device_context.hpp"

#include <cstdlib>
#include <mutex>

#include <fmt/format.h>

#include "cuda/runtime/driver_api.hpp"

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

const Selected& selected() {
  static std::once_flag once;
  static Selected s;
  std::call_once(once, [] {
    const char* env = std::getenv("FUSEBLOCK_CUDA_DEVICE");
    const int ordinal = env && *env ? std::atoi(env) : 0;
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
    FB_CU(cuDevicePrimaryCtxRetain(&s.ctx, dev));
  });
  return s;
}

}  // namespace

std::string DeviceInfo::arch() const { return "sm_" + std::to_string(cc_major) + std::to_string(cc_minor); }

std::string DeviceInfo::describe() const {
  return fmt::format("{} ({}, {} SMs, {:.1f} GiB)", name, arch(), sm_count, total_mem / 1073741824.0);
}

const DeviceInfo& use_device() {
  driver();  // throws the plain "not available" error first
  const Selected& s = selected();
  FB_CU(cuCtxSetCurrent(s.ctx));
  return s.info;
}

}  // namespace fuseblock::cuda
