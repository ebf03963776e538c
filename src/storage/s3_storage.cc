// Listing and reading: ListObjectsV2 pages, GetObject, and the Storage over a prefix.
#include <cstdlib>

#include "orchard/s3.h"
#include "storage/s3_internal.h"

namespace orchard {

using s3internal::HttpResponse;
using s3internal::S3Request;
using s3internal::XmlElement;
using s3internal::XmlUnescape;

Status S3Client::Impl::ListObjects(const std::string& bucket, const std::string& prefix,
                                   const std::function<Status(const ObjectInfo&)>& visit) {
  const std::string location = "s3://" + bucket + "/" + prefix;
  std::string token;
  std::string last_key;
  bool any = false;
  while (true) {
    S3Request r;
    r.operation = "ListObjectsV2";
    r.method = "GET";
    r.bucket = bucket;
    r.bucket_level = true;
    r.location = location;
    r.query = {{"list-type", "2"}, {"max-keys", "1000"}, {"encoding-type", "url"}};
    if (!prefix.empty()) r.query.emplace_back("prefix", prefix);
    if (!token.empty()) r.query.emplace_back("continuation-token", token);
    ORCHARD_ASSIGN_OR_RETURN(HttpResponse response, Send(r));

    const std::string_view xml = response.BodyText();
    const auto root = XmlElement(xml, "ListBucketResult");
    if (!root.has_value()) {
      return Status::CorruptData("ListObjectsV2 " + location +
                                 ": the response is not a ListBucketResult");
    }
    // With encoding-type=url, keys come percent-encoded (spaces as '+'), which also keeps
    // characters XML 1.0 cannot carry. A store that ignores the request sends plain XML
    // text, which is only entity-decoded.
    const auto encoding = XmlElement(*root, "EncodingType");
    const bool url_encoded = encoding.has_value() && *encoding == "url";
    size_t pos = 0;
    while (const auto contents = XmlElement(*root, "Contents", &pos)) {
      const auto raw_key = XmlElement(*contents, "Key");
      const auto raw_size = XmlElement(*contents, "Size");
      const auto raw_etag = XmlElement(*contents, "ETag");
      if (!raw_key.has_value()) {
        return Status::CorruptData("ListObjectsV2 " + location + ": an entry without <Key>");
      }
      ObjectInfo info;
      info.key = XmlUnescape(*raw_key);
      if (url_encoded) info.key = sigv4::UriDecode(info.key, /*plus_as_space=*/true);
      info.size =
          raw_size.has_value() ? std::strtoull(std::string(*raw_size).c_str(), nullptr, 10) : 0;
      if (raw_etag.has_value()) {
        info.etag = XmlUnescape(*raw_etag);
        if (info.etag.size() >= 2 && info.etag.front() == '"' && info.etag.back() == '"') {
          info.etag = info.etag.substr(1, info.etag.size() - 2);
        }
      }
      // S3 lists in byte order; anything else means a broken store or a repeated page, and
      // continuing could loop forever or break the promised order.
      if (any && info.key <= last_key) {
        return Status::CorruptData("ListObjectsV2 " + location + ": key '" + info.key +
                                   "' listed after '" + last_key + "' (not in byte order)");
      }
      any = true;
      last_key = info.key;
      ORCHARD_RETURN_NOT_OK(visit(info));
    }
    const auto truncated = XmlElement(*root, "IsTruncated");
    if (!truncated.has_value() || *truncated != "true") return Status::OK();
    const auto next = XmlElement(*root, "NextContinuationToken");
    const std::string next_token = next.has_value() ? XmlUnescape(*next) : "";
    if (next_token.empty() || next_token == token) {
      return Status::CorruptData("ListObjectsV2 " + location +
                                 ": truncated page without a new continuation token");
    }
    token = next_token;
  }
}

Result<std::vector<uint8_t>> S3Client::Impl::GetObject(const S3Url& url) {
  S3Request r = S3Request::ForObject("GetObject", "GET", url);
  r.max_response_bytes = options.max_object_bytes;
  ORCHARD_ASSIGN_OR_RETURN(HttpResponse response, Send(r));
  return std::move(response.body);
}

namespace {

class S3Storage : public Storage {
 public:
  S3Storage(std::shared_ptr<S3Client> client, std::string bucket, std::string prefix)
      : client_(std::move(client)), bucket_(std::move(bucket)), prefix_(std::move(prefix)) {}

  Status List(const std::function<Status(const ObjectInfo&)>& visit) override {
    return client_->ListObjects(bucket_, prefix_, [&](const ObjectInfo& info) -> Status {
      ObjectInfo relative = info;
      relative.key = info.key.substr(prefix_.size());
      // Zero-byte "folder/" objects are folder markers made by consoles, not files.
      if (relative.key.empty() || (relative.key.back() == '/' && relative.size == 0)) {
        return Status::OK();
      }
      return visit(relative);
    });
  }

  Result<std::vector<uint8_t>> Read(const std::string& key) override {
    return client_->GetObject(S3Url{bucket_, prefix_ + key});
  }

  std::string Describe(const std::string& key) const override {
    return "s3://" + bucket_ + "/" + prefix_ + key;
  }

  Status Write(const std::string& key, std::string_view bytes) override {
    return client_->PutObject(S3Url{bucket_, prefix_ + key}, bytes);
  }

  Status Delete(const std::string& key) override {
    return client_->DeleteObject(S3Url{bucket_, prefix_ + key});
  }

 private:
  std::shared_ptr<S3Client> client_;
  std::string bucket_;
  std::string prefix_;  // "" or ending in '/'
};

}  // namespace

Result<std::unique_ptr<Storage>> OpenS3Storage(const std::string& url,
                                               std::shared_ptr<S3Client> client) {
  ORCHARD_ASSIGN_OR_RETURN(S3Url parsed, ParseS3Url(url));
  if (!client) return Status::InvalidArgument("OpenS3Storage: no client");
  std::string prefix = parsed.key;
  if (!prefix.empty() && prefix.back() != '/') prefix.push_back('/');
  return std::unique_ptr<Storage>(
      new S3Storage(std::move(client), std::move(parsed.bucket), std::move(prefix)));
}

Result<std::unique_ptr<Storage>> OpenS3Storage(const std::string& url, const S3Options& options) {
  ORCHARD_ASSIGN_OR_RETURN(S3Url parsed, ParseS3Url(url));
  ORCHARD_ASSIGN_OR_RETURN(std::shared_ptr<S3Client> client, S3Client::Make(options));
  return OpenS3Storage(url, std::move(client));
}

}  // namespace orchard
