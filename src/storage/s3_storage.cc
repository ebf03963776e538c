// Listing and reading: ListObjectsV2 pages, GetObject, and the Storage over a prefix.
#include "orchard/s3.h"
#include "storage/s3_internal.h"

namespace orchard {

using s3internal::HttpResponse;
using s3internal::S3Request;

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

    Result<s3internal::ListPage> page = s3internal::ParseListObjectsV2(response.BodyText());
    if (!page.ok()) {
      return Status(page.status().code(),
                    "ListObjectsV2 " + location + ": " + page.status().message());
    }
    for (const ObjectInfo& info : page->objects) {
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
    if (!page->is_truncated) return Status::OK();
    if (page->next_continuation_token == token) {
      return Status::CorruptData("ListObjectsV2 " + location +
                                 ": a truncated page repeats the previous continuation token");
    }
    token = std::move(page->next_continuation_token);
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

  Result<bool> CreateIfAbsent(const std::string& key, std::string_view bytes) override {
    return client_->PutObjectIfAbsent(S3Url{bucket_, prefix_ + key}, bytes);
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
