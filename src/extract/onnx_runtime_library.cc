#include "extract/onnx_runtime_library.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <vector>

namespace orchard {
namespace {

struct LibraryState {
  std::mutex mutex;
  std::string requested_path;
  bool loaded = false;
  Status status;
  OnnxRuntime runtime;
};

LibraryState& State() {
  static auto* state = new LibraryState;  // never destroyed: ORT must outlive every session
  return *state;
}

std::vector<std::string> Candidates(const std::string& requested) {
  std::vector<std::string> candidates;
  if (!requested.empty()) candidates.push_back(requested);
  if (const char* env = std::getenv("ORCHARD_ONNXRUNTIME_LIB"); env != nullptr && *env) {
    candidates.emplace_back(env);
  }
#ifdef ORCHARD_ONNXRUNTIME_DEFAULT_LIB
  candidates.emplace_back(ORCHARD_ONNXRUNTIME_DEFAULT_LIB);
#endif
  candidates.emplace_back("libonnxruntime.so.1");
  return candidates;
}

Status Load(LibraryState& state) {
  std::string tried;
  void* handle = nullptr;
  // A named vector, not a temporary in the range-for: GCC 12 -O2 -fsanitize=thread reports a
  // false -Wfree-nonheap-object on the temporary's destruction.
  const std::vector<std::string> candidates = Candidates(state.requested_path);
  for (const std::string& candidate : candidates) {
    // RTLD_LOCAL: ORT's symbols stay out of the global namespace (the Python onnxruntime
    // package may bring its own copy into the same process).
    handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) {
      state.runtime.library_path = candidate;
      break;
    }
    const char* error = dlerror();
    tried += "\n  " + candidate + ": " + (error != nullptr ? error : "not loadable");
  }
  if (handle == nullptr) {
    return Status::NotFound(
        "ONNX Runtime library not found; tried:" + tried +
        "\nInstall it (scripts/install-deps, or `pip install onnxruntime`), set "
        "ORCHARD_ONNXRUNTIME_LIB to a libonnxruntime.so, or choose the opencv-dnn backend");
  }
  using GetApiBaseFn = const OrtApiBase* (*)();
  auto get_api_base = reinterpret_cast<GetApiBaseFn>(dlsym(handle, "OrtGetApiBase"));
  if (get_api_base == nullptr) {
    return Status::CorruptData(state.runtime.library_path +
                               " does not export OrtGetApiBase: not an ONNX Runtime library");
  }
  const OrtApiBase* base = get_api_base();
  state.runtime.version = base->GetVersionString();
  state.runtime.api = base->GetApi(ORT_API_VERSION);
  if (state.runtime.api == nullptr) {
    return Status::Unsupported("ONNX Runtime " + state.runtime.version + " at " +
                               state.runtime.library_path + " does not provide C API version " +
                               std::to_string(ORT_API_VERSION) + " (ONNX Runtime >= 1." +
                               std::to_string(ORT_API_VERSION) + " is needed)");
  }
  return FromOrtStatus(
      state.runtime.api,
      state.runtime.api->CreateEnv(ORT_LOGGING_LEVEL_ERROR, "orchard", &state.runtime.env),
      "creating the ONNX Runtime environment");
}

}  // namespace

void SetOnnxRuntimeLibraryPath(const std::string& path) {
  LibraryState& state = State();
  std::lock_guard lock(state.mutex);
  if (!state.loaded) state.requested_path = path;
}

Result<const OnnxRuntime*> GetOnnxRuntime() {
  LibraryState& state = State();
  std::lock_guard lock(state.mutex);
  if (!state.loaded) {
    state.status = Load(state);
    state.loaded = true;
  }
  if (!state.status.ok()) return state.status;
  return &state.runtime;
}

const OnnxRuntime* LoadedOnnxRuntime() {
  LibraryState& state = State();
  std::lock_guard lock(state.mutex);
  return state.loaded && state.status.ok() ? &state.runtime : nullptr;
}

Status FromOrtStatus(const OrtApi* api, OrtStatus* status, const std::string& context) {
  if (status == nullptr) return Status::OK();
  std::string message = context + ": " + api->GetErrorMessage(status);
  const OrtErrorCode code = api->GetErrorCode(status);
  api->ReleaseStatus(status);
  switch (code) {
    case ORT_NO_SUCHFILE:
      return Status::NotFound(std::move(message));
    case ORT_INVALID_ARGUMENT:
      return Status::InvalidArgument(std::move(message));
    case ORT_INVALID_PROTOBUF:
    case ORT_INVALID_GRAPH:
      return Status::CorruptData(std::move(message));
    case ORT_NOT_IMPLEMENTED:
      return Status::Unsupported(std::move(message));
    default:
      return Status::Internal(std::move(message));
  }
}

}  // namespace orchard
