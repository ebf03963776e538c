#include "pipeline/locations.h"

#include <nlohmann/json.hpp>
#include <string_view>

#include "orchard/writer.h"
#include "util/crash_point.h"

namespace orchard {
namespace fs = std::filesystem;

Result<std::shared_ptr<S3Client>> RunLocations::Client() {
  if (!client_) {
    ORCHARD_ASSIGN_OR_RETURN(client_, S3Client::Make(s3_options_));
  }
  return client_;
}

Result<std::unique_ptr<RunLocations>> RunLocations::Open(const PipelineOptions& options,
                                                         const fs::path& work_dir) {
  std::unique_ptr<RunLocations> l(new RunLocations);
  l->s3_options_ = options.s3;
  l->s3_options_.cancel = options.cancel;  // Ctrl-C reaches stalled requests too
  l->work_dir_ = work_dir;
  if (IsS3Url(options.input)) {
    ORCHARD_ASSIGN_OR_RETURN(auto client, l->Client());
    ORCHARD_ASSIGN_OR_RETURN(l->input_, OpenS3Storage(options.input, client));
  } else {
    ORCHARD_ASSIGN_OR_RETURN(l->input_, OpenLocalStorage(options.input));
  }
  if (IsS3Url(options.output)) {
    ORCHARD_ASSIGN_OR_RETURN(S3Url url, ParseS3Url(options.output));
    if (!url.key.empty() && url.key.back() != '/') url.key.push_back('/');
    ORCHARD_ASSIGN_OR_RETURN(auto client, l->Client());
    const S3Url probe{url.bucket, url.key + "manifest.json"};
    ORCHARD_RETURN_NOT_OK(
        client->CheckWritable(probe).WithContext("output " + options.output + " is not writable"));
    l->output_url_ = url.ToString();
    l->output_dir_ = work_dir / "output";
    ORCHARD_ASSIGN_OR_RETURN(l->output_, OpenS3Storage(l->output_url_, client));
  } else {
    l->output_dir_ = options.output;
    ORCHARD_ASSIGN_OR_RETURN(l->output_, OpenLocalStorage(options.output, /*create_missing=*/true));
  }
  std::error_code ec;
  fs::create_directories(l->output_dir_, ec);
  if (ec)
    return Status::IOError("cannot create output folder " + l->output_dir_.string() + ": " +
                           ec.message());
  return l;
}

Result<std::string> RunLocations::LocalModel(const std::string& model) {
  if (!IsS3Url(model)) return model;
  ORCHARD_ASSIGN_OR_RETURN(S3Url url, ParseS3Url(model));
  ORCHARD_ASSIGN_OR_RETURN(auto client, Client());
  // The sidecar names the ONNX file relative to itself, as on local disk.
  std::string sidecar_key = url.key;
  if (fs::path(sidecar_key).extension() == ".onnx") {
    sidecar_key = sidecar_key.substr(0, sidecar_key.size() - 5) + ".json";
  } else if (fs::path(sidecar_key).extension() != ".json") {
    return Status::Usage("an s3:// model must name its .onnx or .json file: " + model);
  }
  const fs::path local = work_dir_ / "model";
  fs::create_directories(local);
  ORCHARD_ASSIGN_OR_RETURN(auto sidecar_bytes, client->GetObject(S3Url{url.bucket, sidecar_key}));
  nlohmann::json sidecar =
      nlohmann::json::parse(sidecar_bytes.begin(), sidecar_bytes.end(), nullptr, false);
  if (!sidecar.is_object() || !sidecar.contains("file") || !sidecar["file"].is_string()) {
    return Status::InvalidArgument("model sidecar s3://" + url.bucket + "/" + sidecar_key +
                                   " is not valid JSON with a 'file' key");
  }
  const std::string file = sidecar["file"];
  if (file.find('/') != std::string::npos || file == ".." || file.empty()) {
    return Status::InvalidArgument("model sidecar s3://" + url.bucket + "/" + sidecar_key +
                                   ": 'file' must be a name beside the sidecar");
  }
  const std::string folder = sidecar_key.substr(0, sidecar_key.rfind('/') + 1);
  const fs::path local_sidecar = local / fs::path(sidecar_key).filename();
  ORCHARD_RETURN_NOT_OK(WriteFileAtomically(
      local_sidecar.string(),
      std::string_view(reinterpret_cast<const char*>(sidecar_bytes.data()), sidecar_bytes.size())));
  // The weights stream to disk in ranges: a 528 MB VGG16 never sits in memory twice.
  ORCHARD_RETURN_NOT_OK(
      client->DownloadFile(S3Url{url.bucket, folder + file}, (local / file).string()));
  return local_sidecar.string();
}

Status RunLocations::Publish(const std::vector<std::string>& names) {
  if (output_url_.empty()) return Status::OK();
  ORCHARD_ASSIGN_OR_RETURN(auto client, Client());
  ORCHARD_ASSIGN_OR_RETURN(S3Url base, ParseS3Url(output_url_));
  for (const std::string& name : names) {
    const fs::path local = output_dir_ / name;
    if (!fs::exists(local)) continue;
    CrashPoint("publish");
    ORCHARD_RETURN_NOT_OK(client->UploadFile(local.string(), S3Url{base.bucket, base.key + name}));
  }
  return Status::OK();
}

}  // namespace orchard
