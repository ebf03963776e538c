// The "opencv-dnn" backend: OpenCV's DNN module running an ONNX graph on the CPU. Kept as
// the fallback where ONNX Runtime is not installed; Extract() calls are serialised.
#pragma once

#include <memory>

#include "orchard/extractor.h"

namespace orchard {

Result<std::unique_ptr<FeatureExtractor>> CreateOpenCvDnnExtractor(const ModelSpec& spec,
                                                                   const ExtractorOptions& options);

}  // namespace orchard
