// Where a run reads images, finds its model and writes results: local paths or s3:// URLs.
//
// Results bound for S3 are written to a local staging folder first (each file atomically,
// like a local run) and uploaded by Publish(), manifest.json last, so that a reader who sees
// the manifest sees a complete result. S3 objects appear whole or not at all.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "orchard/pipeline.h"
#include "orchard/s3.h"
#include "orchard/storage.h"

namespace orchard {

class RunLocations {
 public:
  // Opens the input, and for an S3 output checks that it is writable before any work.
  static Result<std::unique_ptr<RunLocations>> Open(const PipelineOptions& options,
                                                    const std::filesystem::path& work_dir);

  Storage& input() { return *input_; }
  // The output location as a storage (the descriptor store is written through it).
  Storage& output() { return *output_; }
  // The local folder the outputs are written to (the output itself, or a staging folder).
  const std::filesystem::path& output_dir() const { return output_dir_; }
  // A local path or preset name for ResolveModel: an s3:// model (its .onnx or .json) is
  // downloaded with its sidecar into the work folder.
  Result<std::string> LocalModel(const std::string& model);
  // Uploads the named files of output_dir() to the S3 output, in the order given; nothing
  // to do for a local output.
  Status Publish(const std::vector<std::string>& names);

 private:
  RunLocations() = default;
  Result<std::shared_ptr<S3Client>> Client();

  S3Options s3_options_;
  std::shared_ptr<S3Client> client_;
  std::unique_ptr<Storage> input_;
  std::unique_ptr<Storage> output_;
  std::string output_url_;  // empty for a local output
  std::filesystem::path output_dir_;
  std::filesystem::path work_dir_;
};

}  // namespace orchard
