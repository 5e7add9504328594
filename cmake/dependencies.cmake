# Finds fuseblock's dependencies: Debian's packages on a developer or CI machine, or the folder
# FUSEBLOCK_DEPS_DIR (scripts/pack-gpu-deps.sh) on the GPU machine, where nothing is installed.
find_package(OpenMP REQUIRED)

add_library(fb_fmt INTERFACE)
add_library(fb_cli11 INTERFACE)
add_library(fb_json INTERFACE)
if(FUSEBLOCK_DEPS_DIR)
  target_include_directories(fb_fmt SYSTEM INTERFACE ${FUSEBLOCK_DEPS_DIR}/include)
  target_compile_definitions(fb_fmt INTERFACE FMT_HEADER_ONLY=1)
  target_include_directories(fb_cli11 SYSTEM INTERFACE ${FUSEBLOCK_DEPS_DIR}/include)
  target_include_directories(fb_json SYSTEM INTERFACE ${FUSEBLOCK_DEPS_DIR}/include)
else()
  find_package(fmt REQUIRED)
  target_link_libraries(fb_fmt INTERFACE fmt::fmt)
  find_package(CLI11 REQUIRED)
  target_link_libraries(fb_cli11 INTERFACE CLI11::CLI11)
  find_package(nlohmann_json REQUIRED)
  target_link_libraries(fb_json INTERFACE nlohmann_json::nlohmann_json)
endif()

find_path(FUSEBLOCK_CUDA_INCLUDE_DIR cuda.h nvrtc.h
  HINTS $ENV{CUDA_HOME}/include /usr/local/cuda/include
  DOC "CUDA toolkit headers (cuda.h, nvrtc.h): types only, the libraries are loaded at run time")
if(NOT FUSEBLOCK_CUDA_INCLUDE_DIR)
  message(FATAL_ERROR "cuda.h and nvrtc.h not found: install the CUDA toolkit or set CUDA_HOME")
endif()
