// ONNX Runtime, loaded at run time: the shared library is dlopen'ed once per process and
// everything goes through the versioned C API table it returns (OrtGetApiBase()->GetApi).
//
// Why dlopen rather than linking: the library comes from PyPI's onnxruntime wheel, whose file
// is named libonnxruntime.so.1.x.y while its SONAME is libonnxruntime.so.1, so a link-time
// dependency would not resolve inside the wheel; and the same core then serves the CLI (its
// own copy in .tools/) and the Python package (the onnxruntime package beside it) without
// two copies of ORT in one process.
//
// Search order for the library file: SetOnnxRuntimeLibraryPath() (extractor.h; the Python
// package calls it),
// $ORCHARD_ONNXRUNTIME_LIB, the path found when Orchard was configured
// (ORCHARD_ONNXRUNTIME_DEFAULT_LIB), then the dynamic loader's own search for
// libonnxruntime.so.1 (LD_LIBRARY_PATH, ldconfig).
//
// Thread safety: all functions are safe to call from any thread; the library and the OrtEnv
// are created once and live until the process exits (ORT allows one OrtEnv per process).
#pragma once

#include <onnxruntime_c_api.h>

#include <string>

#include "orchard/extractor.h"
#include "orchard/status.h"

namespace orchard {

struct OnnxRuntime {
  const OrtApi* api = nullptr;
  OrtEnv* env = nullptr;
  std::string library_path;  // the file that was loaded
  std::string version;       // the library's own version string, e.g. "1.32.0"
};

// Loads the library and creates the process's OrtEnv on first call; later calls return the
// same object, or the same error. kNotFound (with what was tried and how to fix it) when no
// library can be loaded; kUnsupported when it is older than the C API Orchard was built for.
Result<const OnnxRuntime*> GetOnnxRuntime();

// The runtime if GetOnnxRuntime() already loaded it successfully, else null (never loads).
const OnnxRuntime* LoadedOnnxRuntime();

// Converts an OrtStatus (owned, may be null = success) into a Status, releasing it.
Status FromOrtStatus(const OrtApi* api, OrtStatus* status, const std::string& context);

}  // namespace orchard
