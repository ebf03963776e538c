// Downloads to a local file in ranged GETs, so that memory stays bounded whatever the
// object's size (a VGG16 ONNX file is 528 MB). Every range is pinned to the ETag seen by
// the first HEAD (If-Match): an object replaced mid-download fails the download instead of
// producing a file stitched from two versions. The file is written under a temporary name
// and renamed into place only when complete (AtomicFile: dropped unless closed).
#include <algorithm>
#include <exception>
#include <string>

#include "orchard/s3.h"
#include "orchard/writer.h"
#include "storage/s3_internal.h"

namespace orchard {

using s3internal::HttpResponse;
using s3internal::S3Request;

namespace {

constexpr uint64_t kMinRangeBytes = 1ull << 20;

Result<uint64_t> ContentLength(const HttpResponse& response, const S3Url& url) {
  const std::string* value = response.Header("content-length");
  uint64_t size = 0;
  if (value == nullptr || value->empty() ||
      value->find_first_not_of("0123456789") != std::string::npos) {
    return Status::IOError("HeadObject " + url.ToString() + ": no valid Content-Length");
  }
  try {
    size = std::stoull(*value);
  } catch (const std::exception&) {
    return Status::IOError("HeadObject " + url.ToString() + ": Content-Length out of range");
  }
  return size;
}

}  // namespace

Status S3Client::Impl::DownloadFile(const S3Url& url, const std::string& local_path) {
  ORCHARD_ASSIGN_OR_RETURN(HttpResponse head,
                           Send(S3Request::ForObject("HeadObject", "HEAD", url)));
  ORCHARD_ASSIGN_OR_RETURN(const uint64_t size, ContentLength(head, url));
  const std::string* etag = head.Header("etag");
  ORCHARD_ASSIGN_OR_RETURN(auto file, AtomicFile::Create(local_path));
  const uint64_t range_bytes = std::max(options.part_size, kMinRangeBytes);
  for (uint64_t offset = 0; offset < size; offset += range_bytes) {
    const uint64_t length = std::min(range_bytes, size - offset);
    S3Request r = S3Request::ForObject("GetObject", "GET", url);
    r.headers = {
        {"Range", "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1)}};
    if (etag != nullptr && !etag->empty()) r.headers.emplace_back("If-Match", *etag);
    r.max_response_bytes = length;
    ORCHARD_ASSIGN_OR_RETURN(HttpResponse part, Send(r));
    if (part.body.size() != length) {
      return Status::IOError("GetObject " + url.ToString() + ": expected " +
                             std::to_string(length) + " bytes at offset " + std::to_string(offset) +
                             ", got " + std::to_string(part.body.size()));
    }
    ORCHARD_RETURN_NOT_OK(file->Append(
        std::string_view(reinterpret_cast<const char*>(part.body.data()), part.body.size())));
  }
  return file->Close();
}

Status S3Client::DownloadFile(const S3Url& url, const std::string& local_path) {
  return impl_->DownloadFile(url, local_path);
}

Status DownloadFile(const std::string& url, const std::string& local_path,
                    const S3Options& options) {
  ORCHARD_ASSIGN_OR_RETURN(S3Url parsed, ParseS3Url(url));
  ORCHARD_ASSIGN_OR_RETURN(auto client, S3Client::Make(options));
  return client->DownloadFile(parsed, local_path);
}

}  // namespace orchard
