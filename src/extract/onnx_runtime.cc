#include "extract/onnx_runtime.h"

#include <array>
#include <cstring>
#include <limits>

#include "extract/onnx_runtime_library.h"

namespace orchard {
namespace {

// Owning handles for the C API's objects; each deleter needs the API table.
template <typename T, void (*OrtApi::*Release)(T*)>
struct OrtDeleter {
  const OrtApi* api;
  void operator()(T* p) const {
    if (p != nullptr) (api->*Release)(p);
  }
};
using SessionPtr = std::unique_ptr<OrtSession, OrtDeleter<OrtSession, &OrtApi::ReleaseSession>>;
using SessionOptionsPtr =
    std::unique_ptr<OrtSessionOptions,
                    OrtDeleter<OrtSessionOptions, &OrtApi::ReleaseSessionOptions>>;
using MemoryInfoPtr =
    std::unique_ptr<OrtMemoryInfo, OrtDeleter<OrtMemoryInfo, &OrtApi::ReleaseMemoryInfo>>;
using ValuePtr = std::unique_ptr<OrtValue, OrtDeleter<OrtValue, &OrtApi::ReleaseValue>>;
using ShapeInfoPtr =
    std::unique_ptr<OrtTensorTypeAndShapeInfo,
                    OrtDeleter<OrtTensorTypeAndShapeInfo, &OrtApi::ReleaseTensorTypeAndShapeInfo>>;

// Names of the session's inputs or outputs.
Result<std::vector<std::string>> SessionNames(const OrtApi* api, const OrtSession* session,
                                              bool outputs) {
  OrtAllocator* allocator = nullptr;
  ORCHARD_RETURN_NOT_OK(
      FromOrtStatus(api, api->GetAllocatorWithDefaultOptions(&allocator), "ORT allocator"));
  size_t count = 0;
  ORCHARD_RETURN_NOT_OK(FromOrtStatus(api,
                                      outputs ? api->SessionGetOutputCount(session, &count)
                                              : api->SessionGetInputCount(session, &count),
                                      "reading the model's signature"));
  std::vector<std::string> names;
  for (size_t i = 0; i < count; ++i) {
    char* name = nullptr;
    ORCHARD_RETURN_NOT_OK(
        FromOrtStatus(api,
                      outputs ? api->SessionGetOutputName(session, i, allocator, &name)
                              : api->SessionGetInputName(session, i, allocator, &name),
                      "reading the model's signature"));
    names.emplace_back(name);
    ORCHARD_RETURN_NOT_OK(FromOrtStatus(api, api->AllocatorFree(allocator, name), "ORT free"));
  }
  return names;
}

std::string Join(const std::vector<std::string>& names) {
  std::string joined;
  for (const auto& name : names) joined += (joined.empty() ? "" : ", ") + name;
  return joined;
}

class OnnxRuntimeExtractor : public FeatureExtractor {
 public:
  OnnxRuntimeExtractor(const OnnxRuntime* ort, SessionPtr session, MemoryInfoPtr memory,
                       std::string input, std::string output, Pooling pooling, int width,
                       int height, int max_images_per_run)
      : api_(ort->api),
        session_(std::move(session)),
        memory_(std::move(memory)),
        input_(std::move(input)),
        output_(std::move(output)),
        pooling_(pooling),
        width_(width),
        height_(height),
        max_images_per_run_(max_images_per_run) {}

  // Runs one blank image to learn the feature layer's shape (and warm the session up).
  Status Probe() {
    std::vector<float> zeros(static_cast<size_t>(3) * width_ * height_, 0.0f);
    ValuePtr out{nullptr, {api_}};
    std::vector<int64_t> dims;
    ORCHARD_RETURN_NOT_OK(Run(1, zeros.data(), &out, &dims));
    ORCHARD_ASSIGN_OR_RETURN(shape_, FeatureShape(dims, output_));
    dim_ = DescriptorDim(pooling_, shape_);
    return Status::OK();
  }

  int64_t dim() const override { return dim_; }
  std::vector<int> feature_shape() const override { return shape_; }

  Status Extract(int n, const float* batch, float* out) override {
    const size_t image_floats = static_cast<size_t>(3) * width_ * height_;
    for (int begin = 0; begin < n; begin += max_images_per_run_) {
      const int count = std::min(max_images_per_run_, n - begin);
      ORCHARD_RETURN_NOT_OK(ExtractChunk(count, batch + image_floats * begin,
                                         out + static_cast<size_t>(dim_) * begin));
    }
    return Status::OK();
  }

 private:
  Status ExtractChunk(int n, const float* batch, float* out) const {
    ValuePtr features{nullptr, {api_}};
    std::vector<int64_t> dims;
    ORCHARD_RETURN_NOT_OK(Run(n, batch, &features, &dims));
    const int c = shape_[0];
    const int hw = shape_[1] * shape_[2];
    int64_t total = 1;
    for (int64_t d : dims) total *= d;
    if (dims.empty() || dims[0] != n || total != static_cast<int64_t>(n) * c * hw) {
      return Status::Internal("feature layer '" + output_ + "' changed shape between batches");
    }
    void* data = nullptr;
    ORCHARD_RETURN_NOT_OK(FromOrtStatus(api_, api_->GetTensorMutableData(features.get(), &data),
                                        "reading the features"));
    PoolFeatures(pooling_, n, c, hw, static_cast<const float*>(data), out);
    return Status::OK();
  }

  Status Run(int n, const float* batch, ValuePtr* out, std::vector<int64_t>* dims) const {
    const std::array<int64_t, 4> shape{n, 3, height_, width_};
    const size_t bytes = sizeof(float) * static_cast<size_t>(n) * 3 * height_ * width_;
    // The input wraps the caller's memory: no copy. ORT does not write to its inputs.
    OrtValue* input = nullptr;
    ORCHARD_RETURN_NOT_OK(FromOrtStatus(
        api_,
        api_->CreateTensorWithDataAsOrtValue(memory_.get(), const_cast<float*>(batch), bytes,
                                             shape.data(), shape.size(),
                                             ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &input),
        "wrapping the input batch"));
    ValuePtr input_owner{input, {api_}};
    const char* input_name = input_.c_str();
    const char* output_name = output_.c_str();
    OrtValue* output = nullptr;
    ORCHARD_RETURN_NOT_OK(FromOrtStatus(
        api_, api_->Run(session_.get(), nullptr, &input_name, &input, 1, &output_name, 1, &output),
        "ONNX Runtime inference"));
    out->reset(output);
    OrtTensorTypeAndShapeInfo* info = nullptr;
    ORCHARD_RETURN_NOT_OK(FromOrtStatus(api_, api_->GetTensorTypeAndShape(output, &info),
                                        "reading the output shape"));
    ShapeInfoPtr info_owner{info, {api_}};
    ONNXTensorElementDataType type{};
    ORCHARD_RETURN_NOT_OK(
        FromOrtStatus(api_, api_->GetTensorElementType(info, &type), "reading the output type"));
    if (type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
      return Status::Unsupported("feature layer '" + output_ + "' is not float32");
    }
    size_t rank = 0;
    ORCHARD_RETURN_NOT_OK(
        FromOrtStatus(api_, api_->GetDimensionsCount(info, &rank), "reading the output shape"));
    dims->assign(rank, 0);
    return FromOrtStatus(api_, api_->GetDimensions(info, dims->data(), rank),
                         "reading the output shape");
  }

  const OrtApi* api_;
  SessionPtr session_;
  MemoryInfoPtr memory_;
  std::string input_;
  std::string output_;
  Pooling pooling_;
  int width_;
  int height_;
  int max_images_per_run_;
  std::vector<int> shape_;
  int64_t dim_ = 0;
};

// Heavy models (forward cost per image at or above this) run differently, for memory:
// - ORT's memory pattern (one block pre-planned for a whole batch's activations) is off: it
//   saves allocation time, which only light models notice (MobileNetV2: -14% without it),
//   and for VGG16 @ 224 in batches of 16 it raised the peak from 736 MB to 1.08 GB;
// - a batch runs in chunks of kHeavyImagesPerRun images: activations scale with the images
//   in one Run, while a heavy network's GEMMs are already large for one image, so the chunk
//   size costs no speed. VGG16 @ 224 with 2 concurrent runs of 16 peaked at 1.23 GB.
constexpr double kHeavyModelGflops = 4.0;
constexpr int kHeavyImagesPerRun = 4;

Status Configure(const OrtApi* api, OrtSessionOptions* session_options,
                 const ExtractorOptions& options, double gflops_per_image) {
  const std::string context = "configuring the ONNX Runtime session";
  if (gflops_per_image >= kHeavyModelGflops) {
    ORCHARD_RETURN_NOT_OK(FromOrtStatus(api, api->DisableMemPattern(session_options), context));
  }
  ORCHARD_RETURN_NOT_OK(FromOrtStatus(
      api, api->SetIntraOpNumThreads(session_options, std::max(1, options.threads)), context));
  ORCHARD_RETURN_NOT_OK(FromOrtStatus(api, api->SetInterOpNumThreads(session_options, 1), context));
  ORCHARD_RETURN_NOT_OK(FromOrtStatus(
      api, api->SetSessionGraphOptimizationLevel(session_options, ORT_ENABLE_ALL), context));
  ORCHARD_RETURN_NOT_OK(
      FromOrtStatus(api, api->SetSessionExecutionMode(session_options, ORT_SEQUENTIAL), context));
  // Intra-op workers that spin between kernels steal the cores that decode images at the same
  // time; measured faster without (docs/benchmarks.md, "Threads").
  return FromOrtStatus(
      api, api->AddSessionConfigEntry(session_options, "session.intra_op.allow_spinning", "0"),
      context);
}

}  // namespace

Result<std::unique_ptr<FeatureExtractor>> CreateOnnxRuntimeExtractor(
    const ModelSpec& spec, const ExtractorOptions& options) {
  ORCHARD_ASSIGN_OR_RETURN(const auto size, InputSize(spec, options));
  const auto [width, height] = size;
  ORCHARD_ASSIGN_OR_RETURN(const OnnxRuntime* ort, GetOnnxRuntime());
  const OrtApi* api = ort->api;

  OrtSessionOptions* raw_options = nullptr;
  ORCHARD_RETURN_NOT_OK(
      FromOrtStatus(api, api->CreateSessionOptions(&raw_options), "ONNX Runtime session options"));
  SessionOptionsPtr session_options{raw_options, {api}};
  const double gflops_per_image = spec.gflops_224 * width * height / (224.0 * 224.0);
  ORCHARD_RETURN_NOT_OK(Configure(api, session_options.get(), options, gflops_per_image));

  OrtSession* raw_session = nullptr;
  ORCHARD_RETURN_NOT_OK(FromOrtStatus(
      api, api->CreateSession(ort->env, spec.file.c_str(), session_options.get(), &raw_session),
      "cannot load ONNX model " + spec.file.string()));
  SessionPtr session{raw_session, {api}};

  ORCHARD_ASSIGN_OR_RETURN(auto inputs, SessionNames(api, session.get(), false));
  ORCHARD_ASSIGN_OR_RETURN(auto outputs, SessionNames(api, session.get(), true));
  std::string input = spec.input_name;
  if (input.empty() && inputs.size() == 1) input = inputs[0];
  if (std::find(inputs.begin(), inputs.end(), input) == inputs.end()) {
    return Status::NotFound("model " + spec.file.string() + " has no input '" + input +
                            "' (its inputs: " + Join(inputs) + ")");
  }
  if (std::find(outputs.begin(), outputs.end(), spec.feature_layer) == outputs.end()) {
    return Status::NotFound("model " + spec.file.string() + " has no output '" +
                            spec.feature_layer + "' (its outputs: " + Join(outputs) +
                            "); the onnxruntime backend reads the feature layer as a graph "
                            "output: export it as one, or use the opencv-dnn backend");
  }

  OrtMemoryInfo* raw_memory = nullptr;
  ORCHARD_RETURN_NOT_OK(FromOrtStatus(
      api, api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &raw_memory),
      "ONNX Runtime memory info"));
  auto extractor = std::make_unique<OnnxRuntimeExtractor>(
      ort, std::move(session), MemoryInfoPtr{raw_memory, {api}}, input, spec.feature_layer,
      options.pooling, width, height,
      gflops_per_image >= kHeavyModelGflops ? kHeavyImagesPerRun : std::numeric_limits<int>::max());
  ORCHARD_RETURN_NOT_OK(extractor->Probe());
  return std::unique_ptr<FeatureExtractor>(std::move(extractor));
}

}  // namespace orchard
