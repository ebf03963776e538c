// orchard._orchard: the pybind11 binding of orchard_core.
//
// The boundary works like xgboost's API_BEGIN/API_END: core calls return a Status, which
// ThrowIfError() turns into a Python exception through one table (kErrorTable); a C++
// exception thrown by a library underneath (std::bad_alloc, cv::Exception) is turned into
// one by a module-local translator. Nothing else crosses the boundary.
//
// GIL: every call that decodes, infers, reads storage or does O(d^2) arithmetic releases
// the GIL. The Python objects it needs are copied, or their buffers borrowed (the borrow
// pins them), before the release; errors are raised after the GIL is taken back. A run
// takes the GIL back only to call Python: the progress callback and Python ResultSinks
// (PyResultSink), whose exceptions stop the run and are re-raised once it has stopped.
//
// Run options: _run, _find_pending_images and _check_run_options take PipelineOptions'
// fields as keyword arguments; an absent one keeps the core's default (RUN_DEFAULTS), and
// RunPlan::Make checks them all, so no default or rule is repeated here.
//
// Dtype and shape checks live in python/orchard/__init__.py, before the call crosses into
// C++ (as faiss does); the private entry points here (_update, _transform) take exactly
// C-contiguous float32 arrays and check shapes again rather than trust the caller.
//
// Thread safety: each wrapper object holds a mutex, taken after the GIL is released, so that
// two Python threads sharing a Featurizer or a PcaAccumulator serialise instead of racing.
// For parallelism use one Featurizer per thread (or process).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "orchard/featurizer.h"
#include "orchard/model.h"
#include "orchard/pca.h"
#include "orchard/pca_io.h"
#include "orchard/pipeline.h"
#include "orchard/s3.h"
#include "orchard/sink.h"
#include "orchard/status.h"
#include "orchard/storage.h"
#include "pipeline/manifest.h"  // BuildInfoJson

namespace py = pybind11;
using namespace pybind11::literals;

namespace orchard::python {
namespace {

// ---- Exceptions ---------------------------------------------------------------------------

struct ErrorClass {
  StatusCode code;
  const char* name;
  PyObject* builtin;  // second base besides OrchardError; null for none
  const char* doc;
  PyObject* cls = nullptr;  // the class, made by CreateExceptions()
};

// The one table from StatusCode to Python exception. Built at module init (the PyExc_*
// objects exist only once Python runs); the classes live as long as the process.
std::vector<ErrorClass>& ErrorTable() {
  static std::vector<ErrorClass> table;
  return table;
}
PyObject* g_orchard_error = nullptr;
PyObject* g_usage_error = nullptr;  // orchard.UsageError, a subclass of InvalidArgumentError

void CreateExceptions(py::module_& m) {
  g_orchard_error = PyErr_NewExceptionWithDoc(
      "orchard.OrchardError",
      "Base class of every error raised by Orchard; `code` is the status name, e.g. "
      "'not_found'.",
      PyExc_Exception, nullptr);
  if (g_orchard_error == nullptr) throw py::error_already_set();
  m.add_object("OrchardError", py::handle(g_orchard_error));
  py::handle(g_orchard_error).attr("code") = py::none();
  ErrorTable() = {
      {StatusCode::kInvalidArgument, "InvalidArgumentError", PyExc_ValueError,
       "A wrong argument: options, shapes, dtypes."},
      {StatusCode::kNotFound, "NotFoundError", PyExc_FileNotFoundError,
       "A file, key, model or layer that does not exist."},
      {StatusCode::kIOError, "StorageError", PyExc_OSError,
       "Reading or writing failed (local disk or S3)."},
      {StatusCode::kCorruptData, "CorruptDataError", PyExc_ValueError,
       "Bytes that are not what they claim to be: a bad model file, accumulator or JSON."},
      {StatusCode::kUnsupported, "UnsupportedError", nullptr,
       "Valid input that Orchard does not handle (format, version)."},
      {StatusCode::kResourceExhausted, "ResourceExhaustedError", PyExc_MemoryError,
       "A configured limit was hit (pixel limit, PCA dimension) or memory ran out."},
      {StatusCode::kCancelled, "CancelledError", nullptr, "The run was stopped."},
      {StatusCode::kInternal, "InternalError", PyExc_RuntimeError,
       "A bug or an unexpected failure of a library underneath."},
  };
  for (ErrorClass& e : ErrorTable()) {
    py::tuple bases = e.builtin != nullptr
                          ? py::make_tuple(py::handle(g_orchard_error), py::handle(e.builtin))
                          : py::make_tuple(py::handle(g_orchard_error));
    const std::string qualified = std::string("orchard.") + e.name;
    e.cls = PyErr_NewExceptionWithDoc(qualified.c_str(), e.doc, bases.ptr(), nullptr);
    if (e.cls == nullptr) throw py::error_already_set();
    py::handle(e.cls).attr("code") = StatusCodeName(e.code);  // also for errors raised in Python
    m.add_object(e.name, py::handle(e.cls));
    if (e.code == StatusCode::kInvalidArgument) {
      g_usage_error = PyErr_NewExceptionWithDoc(
          "orchard.UsageError",
          "The call cannot work as written: an option out of range for this model, an output "
          "that needs mode='resume' or 'overwrite' (the CLI exits 2 for these).",
          e.cls, nullptr);
      if (g_usage_error == nullptr) throw py::error_already_set();
      m.add_object("UsageError", py::handle(g_usage_error));
    }
  }
}

// A message as str; bytes that are not UTF-8 (say, in a file name) become U+FFFD instead of
// failing the conversion.
py::str MessageText(const std::string& message) {
  PyObject* text =
      PyUnicode_DecodeUTF8(message.data(), static_cast<Py_ssize_t>(message.size()), "replace");
  if (text == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(text);
}

// Sets the Python error for (code, message). The GIL must be held.
void SetError(StatusCode code, const std::string& message) {
  PyObject* cls = g_orchard_error;
  for (const ErrorClass& e : ErrorTable()) {
    if (e.code == code) cls = e.cls;
  }
  PyErr_SetObject(cls, MessageText(message).ptr());  // `code` is a class attribute
}

// Raises the Python exception for a non-OK status. The GIL must be held.
void ThrowIfError(const Status& status) {
  if (status.ok()) return;
  if (status.is_usage_error()) {
    PyErr_SetObject(g_usage_error, MessageText(status.message()).ptr());
  } else {
    SetError(status.code(), status.message());
  }
  throw py::error_already_set();
}

template <typename T>
T ValueOrThrow(Result<T> result) {
  ThrowIfError(result.status());
  return result.MoveValue();
}

// Library exceptions (OpenCV, the standard library) become Orchard errors; pybind11's own
// exceptions (a Python error, a cast error) go on to pybind11's translators.
void TranslateException(std::exception_ptr p) {
  try {
    if (p) std::rethrow_exception(p);
  } catch (const py::error_already_set&) {
    throw;
  } catch (const py::builtin_exception&) {
    throw;
  } catch (const std::bad_alloc&) {
    SetError(StatusCode::kResourceExhausted, "out of memory");
  } catch (const std::exception& e) {
    SetError(StatusCode::kInternal, std::string("unexpected C++ exception: ") + e.what());
  }
}

// ---- Conversions --------------------------------------------------------------------------

py::object JsonToPython(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return py::none();
    case nlohmann::json::value_t::boolean:
      return py::bool_(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
      return py::int_(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned:
      return py::int_(j.get<uint64_t>());
    case nlohmann::json::value_t::number_float:
      return py::float_(j.get<double>());
    case nlohmann::json::value_t::string:
      return py::str(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      py::list list;
      for (const auto& e : j) list.append(JsonToPython(e));
      return list;
    }
    case nlohmann::json::value_t::object: {
      py::dict dict;
      for (const auto& [key, value] : j.items()) dict[py::str(key)] = JsonToPython(value);
      return dict;
    }
    default:
      return py::none();
  }
}

// A numpy array that takes ownership of `values` (no copy).
template <typename T>
py::array_t<T> VectorToArray(std::vector<T>&& values, std::vector<py::ssize_t> shape) {
  auto* owned = new std::vector<T>(std::move(values));
  py::capsule free_when_done(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(std::move(shape), owned->data(), free_when_done);
}

// A read-only numpy view of memory owned by the Python object `owner`.
template <typename T>
py::array_t<T> ReadOnlyView(const T* data, std::vector<py::ssize_t> shape, py::handle owner) {
  py::array_t<T> array(std::move(shape), data, owner);
  array.attr("setflags")("write"_a = false);
  return array;
}

const char* ResizeName(ResizePolicy p) {
  return p == ResizePolicy::kStretch ? "stretch" : "shorter_side_crop";
}
const char* InterpolationName(Interpolation i) {
  switch (i) {
    case Interpolation::kNearest:
      return "nearest";
    case Interpolation::kBilinear:
      return "bilinear";
    case Interpolation::kArea:
      return "area";
    case Interpolation::kBicubic:
      return "bicubic";
    case Interpolation::kPilBilinear:
      return "pil_bilinear";
  }
  return "unknown";
}

std::optional<Pooling> PoolingArg(const std::optional<std::string>& pooling) {
  if (!pooling) return std::nullopt;
  return ValueOrThrow(ParsePooling(*pooling));
}

// S3 options from the environment, with an explicit endpoint taking precedence.
S3Options S3OptionsArg(const std::optional<std::string>& endpoint) {
  S3Options options = ValueOrThrow(S3OptionsFromEnvironment());
  if (endpoint && !endpoint->empty()) {
    if (endpoint->rfind("http://", 0) != 0 && endpoint->rfind("https://", 0) != 0) {
      ThrowIfError(Status::InvalidArgument(
          "s3_endpoint must start with http:// or https:// (got '" + *endpoint + "')"));
    }
    options.endpoint = *endpoint;
  }
  return options;
}

// A bytes-like object's memory, pinned (and so unchanged in size) until destruction, which
// must happen with the GIL held.
class BorrowedBytes {
 public:
  // `what` names the argument in a TypeError, e.g. "image 3".
  BorrowedBytes(py::handle object, const std::string& what) {
    if (!PyObject_CheckBuffer(object.ptr())) {
      ThrowTypeError(what, std::string("got ") + Py_TYPE(object.ptr())->tp_name);
    }
    if (PyObject_GetBuffer(object.ptr(), &view_, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) {
      throw py::error_already_set();
    }
    held_ = true;
    const std::string format = view_.format != nullptr ? view_.format : "B";
    if (view_.itemsize != 1 || (format != "B" && format != "b" && format != "c")) {
      ThrowTypeError(what, "got a buffer of format '" + format + "'");
    }
  }
  ~BorrowedBytes() {
    if (held_) PyBuffer_Release(&view_);
  }
  BorrowedBytes(BorrowedBytes&& other) noexcept : view_(other.view_), held_(other.held_) {
    other.held_ = false;
  }
  BorrowedBytes(const BorrowedBytes&) = delete;
  BorrowedBytes& operator=(const BorrowedBytes&) = delete;
  BorrowedBytes& operator=(BorrowedBytes&&) = delete;

  std::span<const uint8_t> span() const {
    return {static_cast<const uint8_t*>(view_.buf), static_cast<size_t>(view_.len)};
  }

 private:
  [[noreturn]] static void ThrowTypeError(const std::string& what, const std::string& got) {
    throw py::type_error(what + ": expected bytes, bytearray, memoryview or a uint8 numpy array; " +
                         got);
  }
  Py_buffer view_{};
  bool held_ = false;
};

// ---- Featurizer ---------------------------------------------------------------------------

struct PyFeaturizer {
  FeaturizerOptions options;
  std::unique_ptr<Featurizer> featurizer;
  std::mutex mutex;  // serialises featurize() calls on this object
};

std::unique_ptr<PyFeaturizer> MakeFeaturizer(const std::string& model, int size,
                                             const std::optional<std::string>& pooling, int threads,
                                             int64_t max_pixels, const std::string& backend,
                                             const std::string& precision, bool jpeg_dct_scaling) {
  if (size < 0 || size > 4096)
    ThrowIfError(Status::InvalidArgument("size must be in 0..4096 (0 = the model's own)"));
  if (threads < 0 || threads > 1024)
    ThrowIfError(Status::InvalidArgument("threads must be in 0..1024 (0 = all cores)"));
  if (max_pixels <= 0) ThrowIfError(Status::InvalidArgument("max_pixels must be positive"));
  auto wrapper = std::make_unique<PyFeaturizer>();
  FeaturizerOptions& o = wrapper->options;
  o.model = model;
  o.backend = backend;
  o.precision = ValueOrThrow(ParsePrecision(precision));
  o.jpeg_dct_scaling = jpeg_dct_scaling;
  o.size = size;
  o.pooling = PoolingArg(pooling);
  o.threads = threads;
  o.max_pixels = static_cast<uint64_t>(max_pixels);
  Result<std::unique_ptr<Featurizer>> created = Status::Internal("not run");
  {
    py::gil_scoped_release release;
    created = Featurizer::Create(o);
  }
  wrapper->featurizer = ValueOrThrow(std::move(created));
  const ModelSpec& spec = wrapper->featurizer->spec();
  std::vector<std::string> warnings = wrapper->featurizer->model().warnings;
  if (spec.random_weights()) warnings.insert(warnings.begin(), RandomWeightsWarning(spec));
  for (const std::string& warning : warnings) {
    if (PyErr_WarnEx(PyExc_RuntimeWarning, warning.c_str(), 1) != 0) {
      throw py::error_already_set();
    }
  }
  return wrapper;
}

py::dict PreprocessDict(const PreprocessSpec& p) {
  return py::dict("width"_a = p.width, "height"_a = p.height, "resize"_a = ResizeName(p.resize),
                  "crop_fraction"_a = p.crop_fraction,
                  "interpolation"_a = InterpolationName(p.interpolation),
                  "channel_order"_a = p.channel_order == ChannelOrder::kRGB ? "RGB" : "BGR",
                  "scale"_a = p.scale, "mean"_a = py::make_tuple(p.mean[0], p.mean[1], p.mean[2]),
                  "std"_a = py::make_tuple(p.stddev[0], p.stddev[1], p.stddev[2]));
}

py::dict ModelInfo(const PyFeaturizer& f) {
  const LoadedModel& m = f.featurizer->model();
  const ModelSpec& s = m.spec;
  return py::dict(
      "name"_a = s.name, "description"_a = s.description, "file"_a = s.file.string(),
      "sha256"_a = s.sha256, "weights"_a = s.weights, "random_weights"_a = s.random_weights(),
      "weights_source"_a = s.weights_source, "license"_a = s.license,
      "backend"_a = f.options.backend, "precision"_a = PrecisionName(m.precision),
      "inference_runs"_a = m.layout.runs, "threads_per_run"_a = m.layout.threads_per_run,
      "feature_layer"_a = s.feature_layer, "feature_shape"_a = m.extractor->feature_shape(),
      "pooling"_a = PoolingName(m.extractor_options.pooling),
      "input_size"_a = py::make_tuple(m.extractor_options.width, m.extractor_options.height),
      "dim"_a = f.featurizer->dim(), "preprocess"_a = PreprocessDict(m.preprocess));
}

// (indices int64 (n,), features float32 (n, dim), errors [(index, stage, message)]).
py::tuple Featurize(PyFeaturizer& f, const py::sequence& images) {
  const size_t n = py::len(images);
  std::vector<BorrowedBytes> borrowed;
  borrowed.reserve(n);
  for (size_t i = 0; i < n; ++i) borrowed.emplace_back(images[i], "image " + std::to_string(i));
  std::vector<std::span<const uint8_t>> spans;
  spans.reserve(n);
  for (const BorrowedBytes& b : borrowed) spans.push_back(b.span());
  Result<FeaturizeResult> result = Status::Internal("not run");
  {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(f.mutex);
    result = f.featurizer->Featurize(spans);
  }
  FeaturizeResult r = ValueOrThrow(std::move(result));
  const auto good = static_cast<py::ssize_t>(r.indices.size());
  py::list errors;
  for (const ImageError& e : r.errors)
    errors.append(py::make_tuple(e.index, e.stage, MessageText(e.message)));
  return py::make_tuple(VectorToArray(std::move(r.indices), {good}),
                        VectorToArray(std::move(r.features), {good, f.featurizer->dim()}),
                        std::move(errors));
}

// Reads `keys` from `storage` on up to `threads` threads. Failures are Status values, as the
// pipeline's readers see them.
std::vector<Result<std::vector<uint8_t>>> ReadAll(Storage& storage,
                                                  const std::vector<std::string>& keys,
                                                  int threads) {
  std::vector<Result<std::vector<uint8_t>>> results(keys.size(), Status::Internal("not read"));
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < keys.size(); i = next++) {
      try {  // an exception must not leave the thread: it would end the Python process
        results[i] = storage.Read(keys[i]);
      } catch (const std::bad_alloc&) {
        results[i] = Status::ResourceExhausted("out of memory reading " + keys[i]);
      } catch (const std::exception& e) {
        results[i] = Status::Internal("reading " + keys[i] + ": " + e.what());
      }
    }
  };
  const int n = std::min<int>(threads, static_cast<int>(std::max<size_t>(keys.size(), 1)));
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) {
    try {
      pool.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // fewer threads: this one reads what is left
    }
  }
  work();
  for (auto& t : pool) t.join();
  return results;
}

// ---- PCA ----------------------------------------------------------------------------------

struct PyPcaAccumulator {
  explicit PyPcaAccumulator(PcaAccumulator a, int64_t max) : acc(std::move(a)), max_dim(max) {}
  PcaAccumulator acc;
  int64_t max_dim;
  mutable std::mutex mutex;
};

struct PyPcaModel {
  PcaModel model;
};

using FloatMatrix = py::array_t<float, py::array::c_style>;

// Checks that x is (n, dim); the Python wrappers check first, with the same message.
void CheckMatrix(const FloatMatrix& x, int64_t dim, const char* what) {
  if (x.ndim() != 2 || x.shape(1) != dim) {
    std::string shape = "(";
    for (py::ssize_t i = 0; i < x.ndim(); ++i)
      shape += (i ? ", " : "") + std::to_string(x.shape(i));
    shape += x.ndim() == 1 ? ",)" : ")";
    ThrowIfError(Status::InvalidArgument(std::string(what) +
                                         ": expected a 2-D array of shape (n, " +
                                         std::to_string(dim) + "), got shape " + shape));
  }
}

std::unique_ptr<PyPcaAccumulator> AccumulatorFromBytes(py::handle data) {
  BorrowedBytes bytes(data, "PcaAccumulator.from_bytes");
  Result<PcaAccumulator> acc = Status::Internal("not run");
  {
    py::gil_scoped_release release;
    acc = PcaAccumulator::Deserialize(bytes.span());
  }
  PcaAccumulator value = ValueOrThrow(std::move(acc));
  const int64_t max_dim = std::max(value.dim(), kDefaultMaxPcaDim);
  return std::make_unique<PyPcaAccumulator>(std::move(value), max_dim);
}

py::bytes AccumulatorToBytes(const PyPcaAccumulator& a) {
  std::vector<uint8_t> bytes;
  {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(a.mutex);
    bytes = a.acc.Serialize();
  }
  return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

std::string ModelToJson(const PcaModel& model, int indent) {
  return PcaModelToJson(model).dump(indent) + (indent >= 0 ? "\n" : "");
}

std::unique_ptr<PyPcaModel> ModelFromJson(const std::string& text) {
  Result<PcaModel> model = Status::Internal("not run");
  {
    py::gil_scoped_release release;
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      model = Status::CorruptData("PCA model JSON: not valid JSON");
    } else {
      model = PcaModelFromJson(j);
    }
  }
  return std::make_unique<PyPcaModel>(PyPcaModel{ValueOrThrow(std::move(model))});
}

// ---- Storage ------------------------------------------------------------------------------

struct PyStorage {
  std::string location;
  std::unique_ptr<Storage> storage;
  std::mutex list_mutex;  // List() is called from one thread at a time; Read() is thread-safe
};

// Reads `keys` from `storage` and featurizes them as one batch, as the pipeline does a work
// unit: an image that cannot be read fails with stage "read" and the storage's message, the
// others as in Featurize. Returns what Featurize returns, indices into `keys`.
py::tuple FeaturizeKeys(PyFeaturizer& f, PyStorage& s, const std::vector<std::string>& keys,
                        int read_threads) {
  if (read_threads < 1 || read_threads > 1024) {
    ThrowIfError(Status::InvalidArgument("read_threads must be in 1..1024"));
  }
  Result<FeaturizeResult> result = Status::Internal("not run");
  {
    py::gil_scoped_release release;
    std::vector<Result<std::vector<uint8_t>>> bytes = ReadAll(*s.storage, keys, read_threads);
    std::vector<std::span<const uint8_t>> spans;
    std::vector<int64_t> positions;  // spans[j] is keys[positions[j]]
    std::vector<ImageError> read_errors;
    for (size_t i = 0; i < bytes.size(); ++i) {
      if (bytes[i].ok()) {
        spans.emplace_back(bytes[i]->data(), bytes[i]->size());
        positions.push_back(static_cast<int64_t>(i));
      } else {
        read_errors.push_back({static_cast<int64_t>(i), "read", bytes[i].status().message()});
      }
    }
    {
      std::lock_guard<std::mutex> lock(f.mutex);
      result = f.featurizer->Featurize(spans);
    }
    if (result.ok()) {
      for (int64_t& index : result->indices) index = positions[static_cast<size_t>(index)];
      for (ImageError& e : result->errors) e.index = positions[static_cast<size_t>(e.index)];
      std::vector<ImageError> errors = std::move(read_errors);
      errors.insert(errors.end(), std::make_move_iterator(result->errors.begin()),
                    std::make_move_iterator(result->errors.end()));
      std::stable_sort(errors.begin(), errors.end(),
                       [](const ImageError& a, const ImageError& b) { return a.index < b.index; });
      result->errors = std::move(errors);
    }
  }
  FeaturizeResult r = ValueOrThrow(std::move(result));
  const auto good = static_cast<py::ssize_t>(r.indices.size());
  py::list errors;
  for (const ImageError& e : r.errors)
    errors.append(py::make_tuple(e.index, e.stage, MessageText(e.message)));
  return py::make_tuple(VectorToArray(std::move(r.indices), {good}),
                        VectorToArray(std::move(r.features), {good, f.featurizer->dim()}),
                        std::move(errors));
}

// ---- Run options --------------------------------------------------------------------------

// The options of _run, _find_pending_images and _check_run_options: keyword arguments named
// like PipelineOptions' fields (plus s3_endpoint and option_style). An absent one keeps the
// default of a default-constructed PipelineOptions (RUN_DEFAULTS), so each default lives in
// one place, the core; the checks are RunPlan::Make's.
struct RunRequest {
  PipelineOptions options;
  OptionStyle style = OptionStyle::kApi;
};

// An integer option for an `int` field: values out of int's range are clamped, so that the
// core's range check names the option rather than the cast failing here.
int ClampToInt(int64_t value) {
  return static_cast<int>(
      std::clamp<int64_t>(value, std::numeric_limits<int>::min(), std::numeric_limits<int>::max()));
}

Result<OutputMode> ParseOutputMode(const std::string& mode) {
  for (OutputMode m :
       {OutputMode::kNew, OutputMode::kResume, OutputMode::kUpdate, OutputMode::kOverwrite}) {
    if (mode == OutputModeName(m)) return m;
  }
  return Status::InvalidArgument("mode must be one of new, resume, update, overwrite (got '" +
                                 mode + "')");
}

RunRequest RunRequestFrom(const std::string& input, const std::string& output,
                          const py::kwargs& kwargs, const char* function) {
  RunRequest request;
  PipelineOptions& o = request.options;
  o.input = input;
  o.output = output;
  std::optional<std::string> s3_endpoint;
  for (const auto& [key_handle, value] : kwargs) {
    const std::string key = py::str(key_handle);
    auto as = [&]<typename T>(T* out) {
      try {
        *out = value.cast<T>();
      } catch (const py::cast_error&) {
        throw py::type_error(std::string(function) + "(): " + key + ": got " +
                             Py_TYPE(value.ptr())->tp_name);
      }
    };
    auto as_int = [&](int* out) {
      int64_t v = 0;
      as(&v);
      *out = ClampToInt(v);
    };
    auto as_text = [&](std::string* out) { as(out); };
    if (key == "model") {
      as_text(&o.model);
    } else if (key == "backend") {
      as_text(&o.backend);
    } else if (key == "precision") {
      std::string text;
      as_text(&text);
      o.precision = ValueOrThrow(ParsePrecision(text));
    } else if (key == "size") {
      as_int(&o.size);
    } else if (key == "pooling") {
      std::optional<std::string> text;
      as(&text);
      o.pooling = PoolingArg(text);
    } else if (key == "pca_components") {
      as(&o.pca_components);
    } else if (key == "pca_variance") {
      as(&o.pca_variance);
    } else if (key == "max_pca_dim") {
      as(&o.max_pca_dim);
    } else if (key == "batch") {
      as_int(&o.batch);
    } else if (key == "threads") {
      as_int(&o.threads);
    } else if (key == "parallel_runs") {
      as_int(&o.parallel_runs);
    } else if (key == "limit") {
      as(&o.limit);
    } else if (key == "save_raw") {
      as(&o.save_raw);
    } else if (key == "max_pixels") {
      int64_t v = 0;
      as(&v);
      o.max_pixels = v > 0 ? static_cast<uint64_t>(v) : 0;  // 0: the core says "must be positive"
    } else if (key == "jpeg_dct_scaling") {
      as(&o.jpeg_dct_scaling);
    } else if (key == "work_dir") {
      std::optional<std::string> text;
      as(&text);
      o.work_dir = text.value_or("");
    } else if (key == "mode") {
      std::string text;
      as_text(&text);
      o.mode = ValueOrThrow(ParseOutputMode(text));
    } else if (key == "commit_images") {
      as(&o.commit_images);
    } else if (key == "commit_seconds") {
      as(&o.commit_seconds);
    } else if (key == "manifest_extra") {
      as(&o.manifest_extra);
    } else if (key == "s3_endpoint") {
      as(&s3_endpoint);
    } else if (key == "option_style") {
      std::string text;
      as_text(&text);
      if (text != "api" && text != "cli") {
        ThrowIfError(Status::InvalidArgument("option_style must be 'api' or 'cli'"));
      }
      request.style = text == "cli" ? OptionStyle::kCli : OptionStyle::kApi;
    } else {
      throw py::type_error(std::string(function) + "() got an unexpected keyword argument '" + key +
                           "'");
    }
  }
  o.s3 = S3OptionsArg(s3_endpoint);
  return request;
}

// PipelineOptions{}'s values under the names RunRequestFrom takes.
py::dict RunDefaults() {
  const PipelineOptions d;
  return py::dict(
      "model"_a = d.model, "backend"_a = d.backend, "precision"_a = PrecisionName(d.precision),
      "size"_a = d.size, "pooling"_a = py::none(), "pca_components"_a = d.pca_components,
      "pca_variance"_a = d.pca_variance, "max_pca_dim"_a = d.max_pca_dim, "batch"_a = d.batch,
      "threads"_a = d.threads, "parallel_runs"_a = d.parallel_runs, "limit"_a = d.limit,
      "save_raw"_a = d.save_raw, "max_pixels"_a = static_cast<int64_t>(d.max_pixels),
      "jpeg_dct_scaling"_a = d.jpeg_dct_scaling, "work_dir"_a = d.work_dir,
      "mode"_a = OutputModeName(d.mode), "commit_images"_a = d.commit_images,
      "commit_seconds"_a = d.commit_seconds, "s3_endpoint"_a = py::none());
}

RunPlan PlanFrom(RunRequest request) {
  return ValueOrThrow(RunPlan::Make(std::move(request.options), request.style));
}

// ---- Result sinks -------------------------------------------------------------------------

// What a Python sink's write() receives: copies, so that a sink may keep them.
struct PyResultRows {
  int64_t first = 0;
  py::list paths;
  py::list labels;
  py::array_t<float> reduced;  // (n, k)
  py::array_t<float> raw;      // (n, dim)
};

// The trampoline of ResultSink: a Python subclass of orchard.ResultSink overrides name(),
// begin(context), write(rows) and commit(). The run calls them from the thread that started
// it, which does not hold the GIL: each call takes it. A Python exception is kept (and the
// run stopped with a non-OK status); _run raises it once the run has stopped.
class PyResultSink : public ResultSink {
 public:
  std::string name() const override {
    py::gil_scoped_acquire gil;
    py::function override = py::get_override(static_cast<const ResultSink*>(this), "name");
    if (!override) return "";
    try {
      return override().cast<std::string>();
    } catch (py::error_already_set& e) {
      Keep(std::move(e));
    } catch (const py::cast_error&) {
      // _run checked the name before the run: this sink changed its mind.
    }
    return "";
  }

  Status Begin(const SinkContext& context) override {
    k_ = context.k;
    dim_ = context.dim;
    return Call("begin", [&] { return py::make_tuple(py::cast(context)); });
  }

  Status Write(const ResultRows& rows) override {
    return Call("write", [&] {
      PyResultRows r;
      r.first = rows.first;
      for (int64_t i = 0; i < rows.n; ++i) {
        r.paths.append(MessageText(rows.paths[i]));
        r.labels.append(MessageText(rows.labels[i]));
      }
      r.reduced = py::array_t<float>({rows.n, k_});
      r.raw = py::array_t<float>({rows.n, dim_});
      std::copy_n(rows.reduced, rows.n * k_, r.reduced.mutable_data());
      std::copy_n(rows.raw, rows.n * dim_, r.raw.mutable_data());
      return py::make_tuple(py::cast(std::move(r)));
    });
  }

  Status Commit() override {
    return Call("commit", [] { return py::tuple(); });
  }

  // The Python exception a method raised during the run, if any. The GIL must be held.
  std::optional<py::error_already_set> TakeError() {
    std::optional<py::error_already_set> error;
    error.swap(error_);
    return error;
  }

 private:
  template <typename MakeArgs>
  Status Call(const char* method, MakeArgs make_args) {
    py::gil_scoped_acquire gil;
    try {
      py::function override = py::get_override(static_cast<const ResultSink*>(this), method);
      if (!override) {  // the base class's: begin and commit do nothing, write is required
        if (std::string_view(method) != "write") return Status::OK();
        throw py::type_error("a ResultSink must define write(rows)");
      }
      override(*make_args());
      return Status::OK();
    } catch (py::error_already_set& e) {
      const std::string what = e.what();
      Keep(std::move(e));
      return Status::Cancelled(std::string("sink ") + method + "() raised " + what);
    } catch (const py::builtin_exception& e) {
      const std::string what = e.what();
      e.set_error();
      Keep(py::error_already_set());
      return Status::Cancelled(std::string("sink ") + method + "() raised " + what);
    } catch (const std::exception& e) {
      return Status::Internal(std::string("sink ") + method + "(): " + e.what());
    }
  }

  void Keep(py::error_already_set&& error) const {
    if (!error_) error_.emplace(std::move(error));
  }

  int64_t k_ = 0;
  int64_t dim_ = 0;
  mutable std::optional<py::error_already_set> error_;  // accessed with the GIL held
};

// A sink under a name read once, before the run (PyResultSink::name() may not fail mid-run).
class NamedSink : public ResultSink {
 public:
  NamedSink(std::shared_ptr<ResultSink> sink, std::string name)
      : sink_(std::move(sink)), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  Status Begin(const SinkContext& context) override { return sink_->Begin(context); }
  Status Write(const ResultRows& rows) override { return sink_->Write(rows); }
  Status Commit() override { return sink_->Commit(); }

 private:
  std::shared_ptr<ResultSink> sink_;
  std::string name_;
};

// The sinks of a run: each an orchard.ResultSink whose name is a plain file name, distinct
// from the others and from the files the run writes itself.
std::vector<std::shared_ptr<ResultSink>> SinksArg(const py::sequence& sinks,
                                                  std::vector<PyResultSink*>* python_sinks) {
  std::vector<std::shared_ptr<ResultSink>> out;
  std::vector<std::string> names = {"features.csv", "features.npy", "raw.npy",
                                    "pca.json",     "errors.csv",   "manifest.json"};
  const size_t reserved = names.size();
  for (size_t i = 0; i < py::len(sinks); ++i) {
    py::object item = sinks[i];
    std::shared_ptr<ResultSink> sink;
    try {
      sink = item.cast<std::shared_ptr<ResultSink>>();
    } catch (const py::cast_error&) {
      throw py::type_error("sinks[" + std::to_string(i) +
                           "]: expected an orchard.ResultSink, got " +
                           Py_TYPE(item.ptr())->tp_name);
    }
    const std::string name = py::str(item.attr("name")());
    if (name.empty() || name == "." || name == ".." ||
        name.find_first_of("/\\") != std::string::npos || name.rfind("_orchard", 0) == 0 ||
        name.find(".tmp-") != std::string::npos) {
      ThrowIfError(Status::InvalidArgument("sink name '" + name +
                                           "' is not a plain file name for the output folder"));
    }
    const auto it = std::find(names.begin(), names.end(), name);
    if (it != names.end()) {
      ThrowIfError(Status::InvalidArgument("sink name '" + name + "' is taken by " +
                                           (static_cast<size_t>(it - names.begin()) < reserved
                                                ? "a file the run writes itself"
                                                : "another sink")));
    }
    names.push_back(name);
    if (auto* python = dynamic_cast<PyResultSink*>(sink.get())) python_sinks->push_back(python);
    out.push_back(std::make_shared<NamedSink>(std::move(sink), name));
  }
  return out;
}

// ---- Pipeline -----------------------------------------------------------------------------

// While a run works with the GIL released, Python cannot run its SIGINT handler: the main
// thread is inside C++, and Ctrl-C would wait for the next progress callback, or for a
// stalled S3 request's timeout. So on the main thread, and while Python's own handler is the
// one installed, the run installs a C handler for its duration: it sets the run's cancel flag
// (the pipeline and the S3 client stop within about a second) and has Python raise
// KeyboardInterrupt afterwards (PyErr_SetInterrupt is async-signal-safe). The previous
// handler is restored when the run returns.
class InterruptWatch {
 public:
  explicit InterruptWatch(std::atomic<bool>* cancel) {
    py::module_ threading = py::module_::import("threading");
    py::module_ signal = py::module_::import("signal");
    const bool main_thread = threading.attr("current_thread")().is(threading.attr("main_thread")());
    const bool python_handles_sigint =
        signal.attr("getsignal")(signal.attr("SIGINT")).is(signal.attr("default_int_handler"));
    if (!main_thread || !python_handles_sigint) return;
    target_.store(cancel);
    struct sigaction action {};
    action.sa_handler = &InterruptWatch::OnSigint;
    sigemptyset(&action.sa_mask);
    installed_ = ::sigaction(SIGINT, &action, &previous_) == 0;
  }
  ~InterruptWatch() {
    if (installed_) ::sigaction(SIGINT, &previous_, nullptr);
    target_.store(nullptr);
  }
  InterruptWatch(const InterruptWatch&) = delete;
  InterruptWatch& operator=(const InterruptWatch&) = delete;

 private:
  static void OnSigint(int) {
    if (std::atomic<bool>* cancel = target_.load()) cancel->store(true);
    PyErr_SetInterrupt();
  }
  static inline std::atomic<std::atomic<bool>*> target_{nullptr};
  struct sigaction previous_ {};
  bool installed_ = false;
};

py::dict Run(const std::string& input, const std::string& output, const py::object& progress,
             const py::sequence& sinks, const py::kwargs& kwargs) {
  RunRequest request = RunRequestFrom(input, output, kwargs, "_run");
  PipelineOptions& o = request.options;
  std::vector<PyResultSink*> python_sinks;
  o.extra_sinks = SinksArg(sinks, &python_sinks);

  std::mutex warnings_mutex;
  std::vector<std::string> warnings;
  o.on_warning = [&](const std::string& message) {
    std::lock_guard<std::mutex> lock(warnings_mutex);
    warnings.push_back(message);
  };
  // Between batches: deliver Ctrl-C (KeyboardInterrupt) and call the user's callback; a Python
  // exception from either cancels the run and is raised once it has stopped.
  std::atomic<bool> cancel{false};
  std::optional<py::error_already_set> python_error;
  o.cancel = &cancel;
  o.on_progress = [&](const Progress& p) {
    py::gil_scoped_acquire acquire;
    if (python_error) return;
    try {
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
      if (!progress.is_none()) {
        progress(py::dict("phase"_a = p.phase, "total"_a = p.total, "processed"_a = p.processed,
                          "failed"_a = p.failed, "elapsed_seconds"_a = p.elapsed_seconds));
      }
    } catch (py::error_already_set& e) {
      python_error.emplace(std::move(e));
      cancel = true;
    }
  };
  const RunPlan plan = PlanFrom(std::move(request));

  Result<RunSummary> summary = Status::Internal("not run");
  {
    InterruptWatch watch(&cancel);
    py::gil_scoped_release release;
    summary = RunPipeline(plan);
  }
  // A Ctrl-C during the run: KeyboardInterrupt, as Python code would raise.
  if (!python_error && PyErr_CheckSignals() != 0) python_error.emplace();
  for (PyResultSink* sink : python_sinks) {
    if (auto error = sink->TakeError(); error && !python_error) python_error = std::move(error);
  }
  if (python_error) throw std::move(*python_error);
  RunSummary s = ValueOrThrow(std::move(summary));
  return py::dict("listed"_a = s.listed, "processed"_a = s.processed, "failed"_a = s.failed,
                  "reused"_a = s.reused, "featurized"_a = s.featurized, "dim"_a = s.dim,
                  "k"_a = s.k, "explained_variance"_a = s.explained_variance,
                  "seconds"_a = s.seconds, "images_per_second"_a = s.images_per_second,
                  "model_name"_a = s.model_name, "random_weights"_a = s.random_weights,
                  "output"_a = s.output, "warnings"_a = warnings);
}

void CheckRunOptions(const std::string& input, const std::string& output,
                     const py::kwargs& kwargs) {
  PlanFrom(RunRequestFrom(input, output, kwargs, "_check_run_options"));
}

py::dict FindPending(const std::string& input, const std::string& output,
                     const py::kwargs& kwargs) {
  const RunPlan plan = PlanFrom(RunRequestFrom(input, output, kwargs, "_find_pending_images"));
  Result<PendingImages> found = Status::Internal("not run");
  {
    py::gil_scoped_release release;
    found = FindPendingImages(plan);
  }
  PendingImages pending = ValueOrThrow(std::move(found));
  py::list images;
  for (auto& [key, content_id] : pending.images) {
    images.append(py::make_tuple(MessageText(key), MessageText(content_id)));
  }
  return py::dict("images"_a = std::move(images), "listed"_a = pending.listed,
                  "reused"_a = pending.reused, "generation"_a = pending.generation,
                  "dim"_a = pending.dim);
}

// items: (key, content_id, row, stage, message), row = -1 for a failed image; the rows of
// the others count 0, 1, 2... in item order and index `descriptors` (rows, dim).
void CommitSegmentArg(
    const std::string& output, const std::optional<std::string>& s3_endpoint,
    const std::string& name, int64_t dim, const py::sequence& items,
    const py::array_t<float, py::array::c_style | py::array::forcecast>& descriptors) {
  auto invalid = [&](const std::string& why) {
    ThrowIfError(Status::InvalidArgument("_commit_segment " + name + ": " + why));
  };
  const size_t dash = name.find('-');
  if (dash == std::string::npos || dash == 0 || dash + 1 == name.size() ||
      name.find_first_not_of("0123456789-") != std::string::npos ||
      name.find('-', dash + 1) != std::string::npos) {
    invalid("the name is not <generation>-<sequence> (see _segment_name)");
  }
  if (dim < 1) invalid("dim must be positive");
  if (descriptors.ndim() != 2 || descriptors.shape(1) != dim) {
    invalid("descriptors must be a 2-D array of shape (rows, " + std::to_string(dim) + ")");
  }
  Segment segment;
  segment.name = name;
  segment.dim = dim;
  int64_t next_row = 0;
  for (size_t i = 0; i < py::len(items); ++i) {
    SegmentItem item;
    try {
      auto t = items[i]
                   .cast<std::tuple<std::string, std::string, int64_t, std::optional<std::string>,
                                    std::optional<std::string>>>();
      item.key = std::move(std::get<0>(t));
      item.content_id = std::move(std::get<1>(t));
      item.row = std::get<2>(t);
      item.stage = std::get<3>(t).value_or("");
      item.message = std::get<4>(t).value_or("");
    } catch (const py::cast_error&) {
      throw py::type_error("_commit_segment: items[" + std::to_string(i) +
                           "] is not (key, content_id, row, stage, message)");
    }
    if (item.row >= 0 && item.row != next_row++) {
      invalid("item " + std::to_string(i) + " has row " + std::to_string(item.row) +
              ": the rows of the images with a descriptor must count 0, 1, 2... in item order");
    }
    if (item.row < -1) invalid("item " + std::to_string(i) + ": row must be -1 or a row");
    if (item.row < 0 && item.stage.empty()) {
      invalid("item " + std::to_string(i) + " failed without a stage");
    }
    segment.items.push_back(std::move(item));
  }
  if (descriptors.shape(0) != next_row) {
    invalid(std::to_string(next_row) + " images have a descriptor, but descriptors has " +
            std::to_string(descriptors.shape(0)) + " rows");
  }
  segment.descriptors.assign(descriptors.data(), descriptors.data() + descriptors.size());
  const S3Options s3 = IsS3Url(output) ? S3OptionsArg(s3_endpoint) : S3Options{};
  Status status;
  {
    py::gil_scoped_release release;
    status = CommitSegment(output, s3, segment);
  }
  ThrowIfError(status);
}

py::dict BuildInfo() {
  py::dict info = JsonToPython(BuildInfoJson());
  info["python"] = PY_VERSION;
  info["pybind11"] = std::to_string(PYBIND11_VERSION_MAJOR) + "." +
                     std::to_string(PYBIND11_VERSION_MINOR) + "." +
                     std::to_string(PYBIND11_VERSION_PATCH);
  info["backends"] = ExtractorBackendNames();
  return info;
}

}  // namespace
}  // namespace orchard::python

PYBIND11_MODULE(_orchard, m) {
  using namespace orchard;
  using namespace orchard::python;
  m.doc() = "Orchard's C++ core (see the `orchard` package for the documented API).";
  m.attr("__version__") = ORCHARD_VERSION;
  CreateExceptions(m);
  py::register_local_exception_translator(&TranslateException);

  // ---- Featurizer ----
  const FeaturizerOptions featurizer_defaults;
  py::class_<PyFeaturizer>(m, "Featurizer",
                           "A loaded CNN turning encoded images into descriptors. Not thread-safe: "
                           "use one per thread or process (calls on one object are serialised).")
      .def(py::init(&MakeFeaturizer), "model"_a = featurizer_defaults.model,
           "size"_a = featurizer_defaults.size, "pooling"_a = py::none(),
           "threads"_a = featurizer_defaults.threads,
           "max_pixels"_a = static_cast<int64_t>(featurizer_defaults.max_pixels),
           "backend"_a = featurizer_defaults.backend,
           "precision"_a = PrecisionName(featurizer_defaults.precision),
           "jpeg_dct_scaling"_a = featurizer_defaults.jpeg_dct_scaling)
      .def_property_readonly("dim", [](const PyFeaturizer& f) { return f.featurizer->dim(); })
      .def_property_readonly("model_name",
                             [](const PyFeaturizer& f) { return f.featurizer->spec().name; })
      .def_property_readonly(
          "random_weights",
          [](const PyFeaturizer& f) { return f.featurizer->spec().random_weights(); })
      .def_property_readonly("input_size",
                             [](const PyFeaturizer& f) {
                               const auto& e = f.featurizer->model().extractor_options;
                               return py::make_tuple(e.width, e.height);
                             })
      .def_property_readonly("pooling",
                             [](const PyFeaturizer& f) {
                               return PoolingName(f.featurizer->model().extractor_options.pooling);
                             })
      .def_property_readonly(
          "threads", [](const PyFeaturizer& f) { return EffectiveThreads(f.options.threads); })
      .def_property_readonly("model_info", &ModelInfo)
      .def("_featurize", &Featurize, "images"_a)
      .def("_featurize_keys", &FeaturizeKeys, "storage"_a, "keys"_a, "read_threads"_a = 8,
           "Reads the keys from the storage and featurizes them as one batch; an image that "
           "cannot be read fails with stage 'read'.")
      .def("__repr__",
           [](const PyFeaturizer& f) {
             const auto& e = f.featurizer->model().extractor_options;
             return "<orchard.Featurizer model='" + f.featurizer->spec().name +
                    "' dim=" + std::to_string(f.featurizer->dim()) +
                    " input=" + std::to_string(e.width) + "x" + std::to_string(e.height) +
                    " pooling=" + PoolingName(e.pooling) + ">";
           })
      .def(py::pickle(
          [](const PyFeaturizer& f) {
            const FeaturizerOptions& o = f.options;
            return py::make_tuple(
                o.model, o.size,
                o.pooling ? py::object(py::str(PoolingName(*o.pooling))) : py::none(), o.threads,
                static_cast<int64_t>(o.max_pixels), o.backend, PrecisionName(o.precision),
                o.jpeg_dct_scaling);
          },
          [](const py::tuple& t) {
            if (t.size() != 8) ThrowIfError(Status::InvalidArgument("bad Featurizer pickle state"));
            return MakeFeaturizer(t[0].cast<std::string>(), t[1].cast<int>(),
                                  t[2].cast<std::optional<std::string>>(), t[3].cast<int>(),
                                  t[4].cast<int64_t>(), t[5].cast<std::string>(),
                                  t[6].cast<std::string>(), t[7].cast<bool>());
          }));

  // ---- PcaAccumulator ----
  py::class_<PyPcaAccumulator>(
      m, "PcaAccumulator",
      "Streaming, mergeable statistics (count, mean, co-moment in float64) "
      "for an exact PCA.")
      .def(py::init([](int64_t dim, int64_t max_dim) {
             Result<PcaAccumulator> acc = Status::Internal("not run");
             {
               py::gil_scoped_release release;
               acc = PcaAccumulator::Create(dim, max_dim);
             }
             return std::make_unique<PyPcaAccumulator>(ValueOrThrow(std::move(acc)), max_dim);
           }),
           "dim"_a, "max_dim"_a = kDefaultMaxPcaDim)
      .def_property_readonly("dim", [](const PyPcaAccumulator& a) { return a.acc.dim(); })
      .def_property_readonly("max_dim", [](const PyPcaAccumulator& a) { return a.max_dim; })
      .def_property_readonly("count",
                             [](const PyPcaAccumulator& a) {
                               std::lock_guard<std::mutex> lock(a.mutex);
                               return a.acc.count();
                             })
      .def_property_readonly("mean",
                             [](const PyPcaAccumulator& a) {
                               std::vector<double> mean;
                               {
                                 py::gil_scoped_release release;
                                 std::lock_guard<std::mutex> lock(a.mutex);
                                 mean = a.acc.mean();
                               }
                               const auto d = static_cast<py::ssize_t>(mean.size());
                               return VectorToArray(std::move(mean), {d});
                             })
      .def(
          "_update",
          [](PyPcaAccumulator& a, const FloatMatrix& x) {
            CheckMatrix(x, a.acc.dim(), "PcaAccumulator.update");
            Status status;
            {
              py::gil_scoped_release release;
              std::lock_guard<std::mutex> lock(a.mutex);
              status = a.acc.Accumulate(x.shape(0), x.data());
            }
            ThrowIfError(status);
          },
          "x"_a.noconvert())
      .def(
          "merge",
          [](py::object self, const PyPcaAccumulator& other) {
            auto& a = self.cast<PyPcaAccumulator&>();
            Status status;
            {
              py::gil_scoped_release release;
              if (&a == &other) {
                std::lock_guard<std::mutex> lock(a.mutex);
                status = a.acc.Merge(a.acc);
              } else {
                std::scoped_lock lock(a.mutex, other.mutex);
                status = a.acc.Merge(other.acc);
              }
            }
            ThrowIfError(status);
            return self;
          },
          "other"_a, "Adds everything `other` has seen; returns self.")
      .def("to_bytes", &AccumulatorToBytes)
      .def_static("from_bytes", &AccumulatorFromBytes, "data"_a)
      .def(
          "finalize",
          [](const PyPcaAccumulator& a, std::optional<int64_t> components,
             std::optional<double> variance) {
            if (components && variance) {
              ThrowIfError(Status::InvalidArgument("give either components or variance, not both"));
            }
            PcaOptions options;
            if (components) {
              if (*components <= 0)
                ThrowIfError(Status::InvalidArgument("components must be positive"));
              options.components = *components;
            } else {
              options.variance = variance.value_or(0.95);
              if (!(options.variance > 0.0 && options.variance <= 1.0)) {
                ThrowIfError(Status::InvalidArgument("variance must be in (0, 1]"));
              }
            }
            Result<PcaModel> model = Status::Internal("not run");
            {
              py::gil_scoped_release release;
              std::lock_guard<std::mutex> lock(a.mutex);
              model = FitPca(a.acc, options);
            }
            return std::make_unique<PyPcaModel>(PyPcaModel{ValueOrThrow(std::move(model))});
          },
          "components"_a = py::none(), "variance"_a = py::none())
      .def("__repr__",
           [](const PyPcaAccumulator& a) {
             std::lock_guard<std::mutex> lock(a.mutex);
             return "<orchard.PcaAccumulator dim=" + std::to_string(a.acc.dim()) +
                    " count=" + std::to_string(a.acc.count()) + ">";
           })
      .def(py::pickle([](const PyPcaAccumulator& a) { return AccumulatorToBytes(a); },
                      [](const py::bytes& b) { return AccumulatorFromBytes(b); }));

  // ---- PcaModel ----
  py::class_<PyPcaModel>(m, "PcaModel", "A fitted PCA: immutable, so transform() is thread-safe.")
      .def_property_readonly("k", [](const PyPcaModel& p) { return p.model.k; })
      .def_property_readonly("dim", [](const PyPcaModel& p) { return p.model.dim; })
      .def_property_readonly("n_samples", [](const PyPcaModel& p) { return p.model.n_samples; })
      .def_property_readonly("total_variance",
                             [](const PyPcaModel& p) { return p.model.total_variance; })
      .def_property_readonly("mean",
                             [](py::handle self) {
                               const PcaModel& p = self.cast<const PyPcaModel&>().model;
                               return ReadOnlyView(p.mean.data(), {p.dim}, self);
                             })
      .def_property_readonly("components",
                             [](py::handle self) {
                               const PcaModel& p = self.cast<const PyPcaModel&>().model;
                               return ReadOnlyView(p.components.data(), {p.k, p.dim}, self);
                             })
      .def_property_readonly("explained_variance",
                             [](py::handle self) {
                               const PcaModel& p = self.cast<const PyPcaModel&>().model;
                               return ReadOnlyView(p.explained_variance.data(), {p.k}, self);
                             })
      .def_property_readonly("explained_variance_ratio",
                             [](py::handle self) {
                               const PcaModel& p = self.cast<const PyPcaModel&>().model;
                               return ReadOnlyView(p.explained_variance_ratio.data(), {p.k}, self);
                             })
      .def(
          "_transform",
          [](const PyPcaModel& p, const FloatMatrix& x) {
            CheckMatrix(x, p.model.dim, "PcaModel.transform");
            const py::ssize_t n = x.shape(0);
            py::array_t<float> out({n, static_cast<py::ssize_t>(p.model.k)});
            float* out_data = out.mutable_data();
            Status status;
            {
              py::gil_scoped_release release;
              status = p.model.Transform(n, x.data(), out_data);
            }
            ThrowIfError(status);
            return out;
          },
          "x"_a.noconvert())
      .def(
          "to_json", [](const PyPcaModel& p, int indent) { return ModelToJson(p.model, indent); },
          "indent"_a = 1)
      .def_static("from_json", &ModelFromJson, "text"_a)
      .def("__repr__",
           [](const PyPcaModel& p) {
             double kept = 0;
             for (double r : p.model.explained_variance_ratio) kept += r;
             return "<orchard.PcaModel k=" + std::to_string(p.model.k) +
                    " dim=" + std::to_string(p.model.dim) +
                    " n_samples=" + std::to_string(p.model.n_samples) +
                    " explained=" + std::to_string(kept) + ">";
           })
      .def(py::pickle([](const PyPcaModel& p) { return ModelToJson(p.model, -1); },
                      [](const std::string& s) { return ModelFromJson(s); }));

  // ---- Storage ----
  py::class_<PyStorage>(m, "Storage",
                        "A local folder or an s3:// prefix. read() and read_many() may be called "
                        "from several threads.")
      .def(py::init([](const std::string& location, const std::optional<std::string>& s3_endpoint) {
             auto wrapper = std::make_unique<PyStorage>();
             wrapper->location = location;
             S3Options s3;
             if (IsS3Url(location)) s3 = S3OptionsArg(s3_endpoint);
             Result<std::unique_ptr<Storage>> storage = Status::Internal("not run");
             {
               py::gil_scoped_release release;
               storage = OpenStorage(location, s3);
             }
             wrapper->storage = ValueOrThrow(std::move(storage));
             return wrapper;
           }),
           "location"_a, "s3_endpoint"_a = py::none())
      .def_property_readonly("location", [](const PyStorage& s) { return s.location; })
      .def("list",
           [](PyStorage& s) {
             std::vector<std::pair<std::string, uint64_t>> objects;
             Status status;
             {
               py::gil_scoped_release release;
               std::lock_guard<std::mutex> lock(s.list_mutex);
               status = s.storage->List([&](const ObjectInfo& info) {
                 objects.emplace_back(info.key, info.size);
                 return Status::OK();
               });
             }
             ThrowIfError(status);
             return objects;
           })
      .def(
          "read",
          [](PyStorage& s, const std::string& key) {
            Result<std::vector<uint8_t>> data = Status::Internal("not run");
            {
              py::gil_scoped_release release;
              data = s.storage->Read(key);
            }
            const std::vector<uint8_t> bytes = ValueOrThrow(std::move(data));
            return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
          },
          "key"_a)
      .def(
          "read_many",
          [](PyStorage& s, const std::vector<std::string>& keys, int threads) {
            if (threads < 1 || threads > 1024)
              ThrowIfError(Status::InvalidArgument("threads must be in 1..1024"));
            std::vector<Result<std::vector<uint8_t>>> results;
            {
              py::gil_scoped_release release;
              results = ReadAll(*s.storage, keys, threads);
            }
            py::list datas;
            py::list errors;
            for (auto& r : results) {
              if (r.ok()) {
                datas.append(py::bytes(reinterpret_cast<const char*>(r->data()), r->size()));
                errors.append(py::none());
              } else {
                datas.append(py::none());
                errors.append(MessageText(r.status().ToString()));
              }
              r = Status::Internal("released");  // free each body once it is copied
            }
            return py::make_tuple(datas, errors);
          },
          "keys"_a, "threads"_a = 8)
      .def(
          "describe",
          [](const PyStorage& s, const std::string& key) { return s.storage->Describe(key); },
          "key"_a)
      .def("__repr__", [](const PyStorage& s) { return "<orchard.Storage '" + s.location + "'>"; });

  // ---- Result sinks ----
  py::class_<SinkContext>(m, "SinkContext", "Where and what a ResultSink writes.")
      .def(py::init([](const std::filesystem::path& dir, int64_t rows, int64_t k, int64_t dim) {
             return SinkContext{dir, rows, k, dim};
           }),
           "dir"_a, "rows"_a, "k"_a, "dim"_a)
      .def_readonly("dir", &SinkContext::dir, "The folder the sink writes its file in.")
      .def_readonly("rows", &SinkContext::rows, "How many rows will be written in all.")
      .def_readonly("k", &SinkContext::k, "Reduced (PCA) columns.")
      .def_readonly("dim", &SinkContext::dim, "Raw descriptor columns.")
      .def("__repr__", [](const SinkContext& c) {
        return "<orchard.SinkContext dir='" + c.dir.string() + "' rows=" + std::to_string(c.rows) +
               " k=" + std::to_string(c.k) + " dim=" + std::to_string(c.dim) + ">";
      });
  py::class_<PyResultRows>(m, "ResultRows",
                           "Consecutive result rows, starting at output row `first`: paths and "
                           "labels (lists of str), reduced (n, k) and raw (n, dim) float32.")
      .def(py::init([](int64_t first, py::list paths, py::list labels,
                       py::array_t<float, py::array::c_style | py::array::forcecast> reduced,
                       py::array_t<float, py::array::c_style | py::array::forcecast> raw) {
             const auto n = static_cast<py::ssize_t>(py::len(paths));
             if (static_cast<py::ssize_t>(py::len(labels)) != n || reduced.ndim() != 2 ||
                 raw.ndim() != 2 || reduced.shape(0) != n || raw.shape(0) != n) {
               ThrowIfError(Status::InvalidArgument(
                   "ResultRows: paths, labels, reduced and raw must have the same rows"));
             }
             return PyResultRows{first, std::move(paths), std::move(labels), std::move(reduced),
                                 std::move(raw)};
           }),
           "first"_a, "paths"_a, "labels"_a, "reduced"_a, "raw"_a)
      .def_readonly("first", &PyResultRows::first)
      .def_readonly("paths", &PyResultRows::paths)
      .def_readonly("labels", &PyResultRows::labels)
      .def_readonly("reduced", &PyResultRows::reduced)
      .def_readonly("raw", &PyResultRows::raw)
      .def_property_readonly("n", [](const PyResultRows& r) { return py::len(r.paths); })
      .def("__len__", [](const PyResultRows& r) { return py::len(r.paths); })
      .def("__repr__", [](const PyResultRows& r) {
        return "<orchard.ResultRows first=" + std::to_string(r.first) +
               " n=" + std::to_string(py::len(r.paths)) + ">";
      });
  py::class_<ResultSink, PyResultSink, std::shared_ptr<ResultSink>>(
      m, "ResultSink",
      "An output format of orchard.run: subclass it and override name() (the file name it "
      "writes in context.dir), begin(context), write(rows) and commit() (make the file whole "
      "under its final name). The run calls them from one thread, rows in output order.")
      .def(py::init<>())
      .def("name",
           [](const ResultSink&) -> std::string {
             throw py::type_error("a ResultSink must define name()");
           })
      .def(
          "begin", [](ResultSink&, const SinkContext&) {}, "context"_a)
      .def(
          "write",
          [](ResultSink&, const PyResultRows&) {
            throw py::type_error("a ResultSink must define write(rows)");
          },
          "rows"_a)
      .def("commit", [](ResultSink&) {});

  // ---- Functions ----
  m.def("_run", &Run, "input"_a, "output"_a, "progress"_a = py::none(), "sinks"_a = py::tuple(),
        "Runs the pipeline; the options are keyword arguments named as in RUN_DEFAULTS (plus "
        "option_style 'api' or 'cli').");
  m.def("_check_run_options", &CheckRunOptions, "input"_a, "output"_a,
        "Checks the options as _run would, without touching any file.");
  m.def("_find_pending_images", &FindPending, "input"_a, "output"_a,
        "Prepares the output as _run would (mode in the options) and returns the images its "
        "descriptor store lacks: dict(images=[(key, content_id)], listed, reused, generation, "
        "dim).");
  m.def("_commit_segment", &CommitSegmentArg, "output"_a, "s3_endpoint"_a, "name"_a, "dim"_a,
        "items"_a, "descriptors"_a,
        "Commits one segment to the descriptor store of `output`; items are (key, content_id, "
        "row, stage, message), row -1 for a failure.");
  m.def("_segment_name", &SegmentName, "generation"_a, "sequence"_a);
  m.attr("RUN_DEFAULTS") = RunDefaults();
  m.attr("DEFAULT_JPEG_DCT_SCALING") = kDefaultJpegDctScaling;
  m.attr("DEFAULT_BACKEND") = kDefaultBackend;
  m.attr("DEFAULT_MODEL") = kDefaultModel;
  m.def("_set_onnxruntime_library", &SetOnnxRuntimeLibraryPath, "path"_a,
        "Where to load libonnxruntime.so from (before the first model is loaded).");
  m.def(
      "upload_file",
      [](const std::string& local_path, const std::string& url,
         const std::optional<std::string>& s3_endpoint) {
        const S3Options options = S3OptionsArg(s3_endpoint);
        Status status;
        {
          py::gil_scoped_release release;
          status = UploadFile(local_path, url, options);
        }
        ThrowIfError(status);
      },
      "local_path"_a, "url"_a, py::kw_only(), "s3_endpoint"_a = py::none(),
      "Uploads a local file to an s3:// URL with Orchard's native client: one PUT, or a "
      "multipart upload (aborted on failure) for files of 16 MiB and more. The object appears "
      "whole or not at all.");
  m.def(
      "check_writable",
      [](const std::string& url, const std::optional<std::string>& s3_endpoint) {
        const S3Options options = S3OptionsArg(s3_endpoint);
        Status status;
        {
          py::gil_scoped_release release;
          status = CheckWritable(url, options);
        }
        ThrowIfError(status);
      },
      "url"_a, py::kw_only(), "s3_endpoint"_a = py::none(),
      "Checks that the object at an s3:// URL could be written, before a long job: starts a "
      "multipart upload there and aborts it (needs s3:PutObject and s3:AbortMultipartUpload; "
      "leaves nothing behind). Raises the S3 error otherwise.");
  m.def("has_image_extension", &HasImageExtension, "key"_a,
        "True if the key's extension (any case) is one Orchard reads as an image.");
  m.def("label_of", &LabelOf, "key"_a, "The name of the key's parent folder ('' at the root).");
  m.def("build_info", &BuildInfo,
        "Versions of Orchard and its libraries, and the CPU features seen.");
  m.def(
      "model_search_path",
      [] {
        std::vector<std::string> dirs;
        for (const auto& d : ModelSearchPath()) dirs.push_back(d.string());
        return dirs;
      },
      "Folders searched for model presets, in order.");
  m.def(
      "list_models",
      [] {
        py::list models;
        for (const ModelSpec& s : ListModels(ModelSearchPath())) {
          models.append(py::dict("name"_a = s.name, "description"_a = s.description,
                                 "weights"_a = s.weights, "random_weights"_a = s.random_weights(),
                                 "file"_a = s.file.string(), "sidecar"_a = s.sidecar.string()));
        }
        return models;
      },
      "The model presets found on the search path, sorted by name.");
  m.def(
      "_add_model_search_dir", [](const std::string& dir) { AddModelSearchDir(dir); }, "dir"_a);
}
