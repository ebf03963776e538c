// The "onnxruntime" backend: ONNX Runtime's CPU execution provider through its C API.
//
// One OrtSession per loaded model, shared by every thread: ORT sessions allow concurrent
// Run(), so Extract() is thread-safe and the per-call state (input/output values) lives on
// the caller's stack. Each Run() uses `ExtractorOptions::threads` intra-op threads; the
// pipeline decides how many Run() calls go at once (see ChooseInferenceLayout).
//
// The feature layer must be one of the graph's outputs (every bundled and exported model
// declares it so); a layer that is only an internal tensor is a kNotFound that lists the
// graph's outputs.
#pragma once

#include <memory>

#include "orchard/extractor.h"

namespace orchard {

Result<std::unique_ptr<FeatureExtractor>> CreateOnnxRuntimeExtractor(
    const ModelSpec& spec, const ExtractorOptions& options);

}  // namespace orchard
