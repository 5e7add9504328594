// fuseblock._core: the nanobind extension under the `fuseblock` Python package. It binds
// CompiledBlock and Params; python/fuseblock/__init__.py builds the public API on top of it
// (argument checks, spec files, dtype rules), so this file only converts.
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "cuda/runtime/device_context.hpp"
#include "fuseblock/fuseblock.hpp"
#include "python/array_convert.hpp"
#include "python/compiled_block.hpp"
#include "spec/limits.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace fuseblock::python {
namespace {

nb::tuple shape_tuple(const Shape& s) {
  nb::list l;
  for (int64_t d : s) l.append(d);
  return nb::tuple(l);
}

// The conv's attributes, from which a shape-only (fake) implementation computes output shapes
// for symbolic input shapes.
nb::dict conv_geometry(const ConvAttrs& c) {
  nb::dict d;
  auto first = [&](const std::array<int64_t, 3>& a) {
    return std::vector<int64_t>(a.begin(), a.begin() + c.dims);
  };
  d["dims"] = c.dims;
  d["out_channels"] = c.out_channels;
  d["kernel_size"] = first(c.kernel);
  d["stride"] = first(c.stride);
  d["padding"] = first(c.padding);
  d["dilation"] = first(c.dilation);
  return d;
}

// A message as a Python str; bytes that are not UTF-8 (a file name, a quoted word from the input)
// become U+FFFD rather than turning the user's error into a UnicodeDecodeError.
nb::str text(const std::string& s) {
  return nb::steal<nb::str>(PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace"));
}

// UserError -> fuseblock.UserError (a ValueError) whose message is the formatted error
// ("spec:3:14: error: ...\n  hint: ...") and whose attributes give the parts.
void register_errors(nb::module_& m) {
  static PyObject* user_error = PyErr_NewExceptionWithDoc(
      "fuseblock.UserError",
      "A problem the caller can fix (spec, shapes, parameters, files, options). str(e) is the "
      "formatted message with spec line:col and a hint; e.line, e.col (0 when not from a spec), "
      "e.hint and e.source give the parts.",
      PyExc_ValueError, nullptr);
  static PyObject* internal_error = PyErr_NewExceptionWithDoc(
      "fuseblock.InternalError", "A broken invariant inside fuseblock: a bug to report.", PyExc_RuntimeError,
      nullptr);
  m.attr("UserError") = nb::handle(user_error);
  m.attr("InternalError") = nb::handle(internal_error);
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const UserError& e) {
      nb::object exc = nb::handle(user_error)(text(e.formatted()));
      exc.attr("line") = e.loc().line;
      exc.attr("col") = e.loc().col;
      exc.attr("hint") = text(e.hint());
      exc.attr("message") = text(e.what());
      PyErr_SetObject(user_error, exc.ptr());
    } catch (const InternalError& e) {
      PyErr_SetString(internal_error, e.what());
    }
  });
}

std::map<std::string, Tensor> to_tensors(const std::map<std::string, HostArray>& arrays) {
  std::map<std::string, Tensor> out;
  for (const auto& [k, a] : arrays) out[k] = to_tensor(a);
  return out;
}

nb::dict to_dict(const std::map<std::string, Tensor>& tensors) {
  nb::dict d;
  for (const auto& [k, t] : tensors) d[k.c_str()] = to_numpy(t);
  return d;
}

}  // namespace
}  // namespace fuseblock::python

NB_MODULE(_core, m) {
  using namespace fuseblock;
  using namespace fuseblock::python;
  m.doc() = "fuseblock's C++ core (use the `fuseblock` package, not this module)";
  // fuseblock.torch keeps compiled blocks in an lru_cache for the process's life; at interpreter
  // exit they are still referenced, which nanobind would report as leaks. They are not.
  nb::set_leak_warnings(false);
  register_errors(m);

  m.def("default_spec", [] { return std::string(kDefaultSpec); });
  m.attr("max_spec_bytes") = spec::kMaxSpecBytes;
  m.def(
      "resolve_device",
      [](const std::string& device) {
        std::string why;
        Device d = resolve_device(parse_device(device), &why);
        return std::make_pair(std::string(device_name(d)), why);
      },
      "device"_a, "(resolved device name, why CUDA is not used or '')");

  m.def(
      "cuda_device_ordinal", [] { return cuda::use_device().ordinal; },
      "The CUDA device fuseblock runs on ($FUSEBLOCK_CUDA_DEVICE, default 0); raises without a GPU");

  nb::class_<Params>(m, "Params", "Block parameters held by the C++ core");

  nb::class_<CompiledBlock>(m, "CompiledBlock")
      .def(
          "__init__",
          [](CompiledBlock* self, const std::string& text, const std::string& source_name, const std::string& folder,
             bool assume_finite, std::optional<bool> training, std::optional<std::vector<int64_t>> input_shape,
             std::optional<std::string> dtype, std::optional<std::string> norm_param_dtype) {
            CompileOptions o;
            o.assume_finite = assume_finite;
            o.training = training;
            if (input_shape) o.input_shape = Shape(input_shape->begin(), input_shape->end());
            auto dtype_of = [](const std::string& name) {
              const std::optional<DType> d = dtype_from_spec_name(name);
              if (!d) throw UserError("unknown dtype '" + name + "'", "use one of " + dtype_spec_names());
              return *d;
            };
            if (dtype) o.storage = dtype_of(*dtype);
            if (norm_param_dtype) o.norm_params = dtype_of(*norm_param_dtype);
            new (self) CompiledBlock(text, source_name, folder, o);
          },
          "text"_a, "source_name"_a, "folder"_a, "assume_finite"_a, "training"_a.none(), "input_shape"_a.none(),
          "dtype"_a.none() = nb::none(), "norm_param_dtype"_a.none() = nb::none())
      .def_prop_ro("input_shape", [](const CompiledBlock& b) { return shape_tuple(b.input_shape()); })
      .def_prop_ro("output_shape", [](const CompiledBlock& b) { return shape_tuple(b.output_shape()); })
      .def_prop_ro("dropout_p", &CompiledBlock::dropout_p)
      .def_prop_ro("dtype", [](const CompiledBlock& b) { return std::string(dtype_name(b.plan().pipeline.types.storage)); })
      .def_prop_ro("norm_param_dtype", [](const CompiledBlock& b) { return std::string(dtype_name(b.norm_param_dtype())); })
      .def_prop_ro("conv_geometry", [](const CompiledBlock& b) { return conv_geometry(b.plan().pipeline.conv); })
      .def_prop_ro("cuda_refusal", &CompiledBlock::cuda_refusal)
      .def_prop_ro("fill_path", [](const CompiledBlock& b) { return b.plan().pipeline.fill_path(); })
      // The guard is checked at run time (assume_finite keeps the guard's proof but skips the check).
      .def_prop_ro("guarded", [](const CompiledBlock& b) { return b.plan().guard && !b.plan().assume_finite; })
      .def("explain", &CompiledBlock::explain)
      .def("plan_text", [](const CompiledBlock& b) { return dump(b.plan()); })
      .def("spec_params", &CompiledBlock::spec_params)
      .def("init_params", &CompiledBlock::init_params, "seed"_a)
      .def(
          "params_from",
          [](const CompiledBlock& b, const std::map<std::string, HostArray>& arrays) {
            return b.params_from(to_tensors(arrays));
          },
          "arrays"_a)
      .def(
          "check_param_shapes",
          [](const CompiledBlock& b, const std::map<std::string, std::vector<int64_t>>& shapes) {
            std::map<std::string, Shape> s;
            for (const auto& [k, v] : shapes) s[k] = Shape(v.begin(), v.end());
            b.check_param_shapes(s);
          },
          "shapes"_a)
      .def(
          "params_to_dict", [](const CompiledBlock& b, const Params& p) { return to_dict(b.params_to_map(p)); },
          "params"_a)
      .def(
          "run",
          [](const CompiledBlock& b, const Params& params, HostArray x, const std::string& device, bool allow_tf32,
             std::optional<std::pair<uint64_t, uint64_t>> dropout_stream, std::optional<HostArray> channel_add) {
            Tensor in = to_tensor(x);
            const std::optional<Tensor> add = channel_add ? std::optional<Tensor>(to_tensor(*channel_add)) : std::nullopt;
            std::optional<DropoutStream> stream;
            if (dropout_stream) stream = DropoutStream{dropout_stream->first, dropout_stream->second};
            const Device d = parse_device(device);
            Tensor out;
            {
              // The plan is only read: other Python threads may run blocks meanwhile.
              nb::gil_scoped_release release;
              out = b.run(params, in, d, allow_tf32, stream, add ? &*add : nullptr);
            }
            return to_numpy(std::move(out));
          },
          "params"_a, "x"_a.noconvert(), "device"_a, "allow_tf32"_a, "dropout_stream"_a.none(),
          "channel_add"_a.noconvert().none() = nb::none())
      .def("cuda_scratch_bytes", &CompiledBlock::cuda_scratch_bytes, "allow_tf32"_a, "device"_a,
           nb::call_guard<nb::gil_scoped_release>())
      .def(
          "launch_cuda",
          [](const CompiledBlock& b, nb::dict buffers, uint64_t stream, bool allow_tf32,
             std::optional<std::pair<uint64_t, uint64_t>> dropout_stream, int device) {
            // Read in place (no std::map): this runs for every call of the torch op.
            cuda::DeviceTensors t;
            for (auto [name, ptr] : buffers) t.bind(nb::cast<std::string>(name), nb::cast<uint64_t>(ptr));
            std::optional<DropoutStream> ds;
            if (dropout_stream) ds = DropoutStream{dropout_stream->first, dropout_stream->second};
            nb::gil_scoped_release release;  // the first call compiles (NVRTC): let other threads run
            b.launch_cuda(t, stream, allow_tf32, ds, device);
          },
          "buffers"_a, "stream"_a, "allow_tf32"_a, "dropout_stream"_a.none(), "device"_a,
          "Enqueues the block on device pointers and a CUstream handle. buffers: name -> device pointer, "
          "by the names 'input', 'output', 'scratch', 'dropout state' (a device pointer to (seed, offset) as two "
          "int64, read when the kernels run) and the parameter keys ('conv.weight', ...); an absent name is 0");
}
