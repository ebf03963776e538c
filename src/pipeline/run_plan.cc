// Option checks for every front end, in one place.
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "orchard/pipeline.h"
#include "orchard/s3.h"

namespace orchard {

const char* OutputModeName(OutputMode mode) {
  switch (mode) {
    case OutputMode::kNew:
      return "new";
    case OutputMode::kResume:
      return "resume";
    case OutputMode::kUpdate:
      return "update";
    case OutputMode::kOverwrite:
      return "overwrite";
  }
  return "?";
}

std::string OptionName(std::string_view name, OptionStyle style) {
  std::string out(name);
  if (style == OptionStyle::kCli) {
    for (char& c : out) c = c == '_' ? '-' : c;
    out = "--" + out;
  }
  return out;
}

Status ValidatePipelineOptions(const PipelineOptions& o, OptionStyle style) {
  auto name = [&](std::string_view option) { return OptionName(option, style); };
  auto invalid = [&](std::string_view option, const std::string& rule) {
    return Status::Usage(name(option) + " " + rule);
  };
  if (o.input.empty()) return invalid("input", "is required");
  if (o.output.empty()) return invalid("output", "is required");
  // A malformed s3:// URL is a usage error, found before credentials are looked for.
  for (const auto& [option, value] : {std::pair<const char*, const std::string&>{"input", o.input},
                                      {"output", o.output},
                                      {"model", o.model}}) {
    if (!IsS3Url(value)) continue;
    if (auto url = ParseS3Url(value); !url.ok()) return invalid(option, url.status().message());
  }
  if (IsS3Url(o.model) && !o.model.ends_with(".onnx") && !o.model.ends_with(".json")) {
    return invalid("model", "in S3 must name its .onnx file or its .json sidecar: " + o.model);
  }
  // Every range check is written so that NaN fails it (a comparison with NaN is false), and
  // doubles must be finite besides.
  if (o.pca_components != 0 && o.pca_variance != 0.0) {
    return Status::Usage("give either " + name("pca_components") + " or " + name("pca_variance") +
                         ", not both");
  }
  if (!(o.pca_components >= 0)) return invalid("pca_components", "must be positive");
  // 0 means "not given" (the default variance applies).
  if (o.pca_variance != 0.0 &&
      !(std::isfinite(o.pca_variance) && o.pca_variance > 0.0 && o.pca_variance <= 1.0)) {
    return invalid("pca_variance", "must be in (0, 1]");
  }
  if (!(o.max_pca_dim >= 1)) return invalid("max_pca_dim", "must be positive");
  if (!(o.batch >= 1 && o.batch <= 4096)) return invalid("batch", "must be in 1..4096");
  if (!(o.threads >= 0 && o.threads <= 1024)) return invalid("threads", "must be in 0..1024");
  if (!(o.parallel_runs >= 0 && o.parallel_runs <= 1024)) {
    return invalid("parallel_runs", "must be in 0..1024");
  }
  if (!(o.size >= 0 && o.size <= 4096)) return invalid("size", "must be in 1..4096");
  if (!(o.limit >= 0)) return invalid("limit", "must be 0 (all) or more");
  if (!(o.max_pixels > 0)) return invalid("max_pixels", "must be positive");
  if (!(o.commit_images >= 1)) return invalid("commit_images", "must be positive");
  if (!(std::isfinite(o.commit_seconds) && o.commit_seconds > 0.0)) {
    return invalid("commit_seconds", "must be a positive, finite number of seconds");
  }
  if (!o.manifest_extra.empty()) {
    const auto extra = nlohmann::json::parse(o.manifest_extra, nullptr, false);
    if (!extra.is_object()) return invalid("manifest_extra", "must be a JSON object");
  }
  for (const auto& sink : o.extra_sinks) {
    if (!sink) return Status::Usage("an extra sink is null");
  }
  return Status::OK();
}

Result<RunPlan> RunPlan::Make(PipelineOptions options, OptionStyle style) {
  ORCHARD_RETURN_NOT_OK(ValidatePipelineOptions(options, style));
  return RunPlan(std::move(options), style);
}

}  // namespace orchard
