#include "extract/opencv_dnn.h"

#include <mutex>
#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

namespace orchard {
namespace {

class OpenCvDnnExtractor : public FeatureExtractor {
 public:
  OpenCvDnnExtractor(cv::dnn::Net net, std::string layer, Pooling pooling, int width, int height)
      : net_(std::move(net)),
        layer_(std::move(layer)),
        pooling_(pooling),
        width_(width),
        height_(height) {}

  // Runs one blank image to learn the feature layer's shape (and warm the network up).
  Status Probe() {
    std::vector<float> zeros(static_cast<size_t>(3) * width_ * height_, 0.0f);
    cv::Mat out;
    ORCHARD_RETURN_NOT_OK(Forward(1, zeros.data(), &out));
    const std::vector<int64_t> dims(out.size.p, out.size.p + out.dims);
    ORCHARD_ASSIGN_OR_RETURN(shape_, FeatureShape(dims, layer_));
    dim_ = DescriptorDim(pooling_, shape_);
    return Status::OK();
  }

  int64_t dim() const override { return dim_; }
  std::vector<int> feature_shape() const override { return shape_; }

  Status Extract(int n, const float* batch, float* out) override {
    if (n <= 0) return Status::OK();
    // cv::dnn::Net keeps per-forward state in itself: calls take turns.
    std::lock_guard lock(mutex_);
    cv::Mat features;
    ORCHARD_RETURN_NOT_OK(Forward(n, batch, &features));
    const int c = shape_[0];
    const int hw = shape_[1] * shape_[2];
    if (features.total() != static_cast<size_t>(n) * c * hw || !features.isContinuous()) {
      return Status::Internal("feature layer '" + layer_ + "' changed shape between batches");
    }
    PoolFeatures(pooling_, n, c, hw, features.ptr<float>(), out);
    return Status::OK();
  }

 private:
  Status Forward(int n, const float* batch, cv::Mat* out) {
    const int dims[4] = {n, 3, height_, width_};
    // The blob wraps the caller's memory: no copy. OpenCV does not write to its input.
    cv::Mat blob(4, dims, CV_32F, const_cast<float*>(batch));
    try {
      net_.setInput(blob);
      *out = net_.forward(layer_);
    } catch (const cv::Exception& e) {
      return Status::Internal("OpenCV DNN forward failed: " + std::string(e.err));
    }
    if (out->type() != CV_32F) return Status::Internal("feature layer is not float32");
    return Status::OK();
  }

  std::mutex mutex_;
  cv::dnn::Net net_;
  std::string layer_;
  Pooling pooling_;
  int width_;
  int height_;
  std::vector<int> shape_;
  int64_t dim_ = 0;
};

}  // namespace

Result<std::unique_ptr<FeatureExtractor>> CreateOpenCvDnnExtractor(
    const ModelSpec& spec, const ExtractorOptions& options) {
  ORCHARD_ASSIGN_OR_RETURN(const auto size, InputSize(spec, options));
  const auto [width, height] = size;
  if (options.threads > 0) cv::setNumThreads(options.threads);
  cv::dnn::Net net;
  try {
    net = cv::dnn::readNetFromONNX(spec.file.string());
  } catch (const cv::Exception& e) {
    return Status::CorruptData("cannot load ONNX model " + spec.file.string() + ": " + e.err);
  }
  if (net.empty()) return Status::CorruptData("ONNX model " + spec.file.string() + " is empty");
  net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
  if (net.getLayerId(spec.feature_layer) < 0) {
    std::string outputs;
    for (const auto& name : net.getUnconnectedOutLayersNames()) {
      outputs += (outputs.empty() ? "" : ", ") + name;
    }
    return Status::NotFound("model " + spec.file.string() + " has no layer '" + spec.feature_layer +
                            "' (its outputs: " + outputs + ")");
  }
  auto extractor = std::make_unique<OpenCvDnnExtractor>(std::move(net), spec.feature_layer,
                                                        options.pooling, width, height);
  ORCHARD_RETURN_NOT_OK(extractor->Probe());
  return std::unique_ptr<FeatureExtractor>(std::move(extractor));
}

}  // namespace orchard
