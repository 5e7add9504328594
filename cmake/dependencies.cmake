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

# The cuDNN frontend (header-only: PyPI nvidia-cudnn-frontend, scripts/install-deps.sh) and
# cuDNN's own headers (beside the CUDA toolkit's here; in FUSEBLOCK_DEPS_DIR on the GPU machine),
# for src/cuda/runtime/cudnn_conv_plan.cpp alone; libcudnn itself is loaded at run time. Without
# them fuseblock builds all the same and cudnn_unavailable() says why (pip's isolated build of
# the Python package cannot see the PyPI package: CMAKE_ARGS=-DFUSEBLOCK_CUDNN_FRONTEND_DIR=...).
set(FUSEBLOCK_CUDNN_FRONTEND_DIR "" CACHE PATH
  "Folder with cudnn_frontend.h (empty: FUSEBLOCK_DEPS_DIR/include, else the installed nvidia-cudnn-frontend's)")
if(NOT FUSEBLOCK_CUDNN_FRONTEND_DIR)
  set(fb_frontend_dir "")
  if(FUSEBLOCK_DEPS_DIR AND EXISTS "${FUSEBLOCK_DEPS_DIR}/include/cudnn_frontend.h")
    set(fb_frontend_dir "${FUSEBLOCK_DEPS_DIR}/include")
  else()
    find_program(FUSEBLOCK_PYTHON3 NAMES python3 python)
    if(FUSEBLOCK_PYTHON3)
      execute_process(COMMAND "${FUSEBLOCK_PYTHON3}" "${CMAKE_SOURCE_DIR}/scripts/cudnn-frontend-include.py"
                      OUTPUT_VARIABLE fb_frontend_dir OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET
                      RESULT_VARIABLE fb_frontend_rc)
      if(NOT fb_frontend_rc EQUAL 0)
        set(fb_frontend_dir "")
      endif()
    endif()
  endif()
  if(fb_frontend_dir)  # cached only when found, so a later configure retries after an install
    set(FUSEBLOCK_CUDNN_FRONTEND_DIR "${fb_frontend_dir}" CACHE PATH "Folder with cudnn_frontend.h" FORCE)
  endif()
endif()
find_path(FUSEBLOCK_CUDNN_INCLUDE_DIR cudnn.h
  HINTS ${FUSEBLOCK_DEPS_DIR}/include ${FUSEBLOCK_CUDA_INCLUDE_DIR} $ENV{CUDNN_HOME}/include
  DOC "cuDNN's headers (cudnn.h, cuDNN 9): types only, libcudnn is loaded at run time")
if(EXISTS "${FUSEBLOCK_CUDNN_FRONTEND_DIR}/cudnn_frontend.h" AND FUSEBLOCK_CUDNN_INCLUDE_DIR)
  set(FUSEBLOCK_HAS_CUDNN_FRONTEND ON)
  message(STATUS "cuDNN frontend: ${FUSEBLOCK_CUDNN_FRONTEND_DIR}; cudnn.h: ${FUSEBLOCK_CUDNN_INCLUDE_DIR}")
else()
  set(FUSEBLOCK_HAS_CUDNN_FRONTEND OFF)
  message(WARNING "cuDNN frontend headers (FUSEBLOCK_CUDNN_FRONTEND_DIR='${FUSEBLOCK_CUDNN_FRONTEND_DIR}') or "
                  "cudnn.h (FUSEBLOCK_CUDNN_INCLUDE_DIR) not found: building without cuDNN; "
                  "run scripts/install-deps.sh and configure again")
endif()
