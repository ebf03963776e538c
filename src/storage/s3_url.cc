#include <cctype>
#include <string_view>

#include "orchard/s3.h"

namespace orchard {
namespace {

// Length of the scheme and "://" if `url` starts with s3://, s3a:// or s3n:// (any case).
size_t S3SchemeLength(std::string_view url) {
  for (std::string_view scheme : {"s3://", "s3a://", "s3n://"}) {
    if (url.size() < scheme.size()) continue;
    bool match = true;
    for (size_t i = 0; i < scheme.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(url[i])) != scheme[i]) {
        match = false;
        break;
      }
    }
    if (match) return scheme.size();
  }
  return 0;
}

bool IsBucketChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
}

}  // namespace

bool IsS3Url(const std::string& url) { return S3SchemeLength(url) > 0; }

Result<S3Url> ParseS3Url(const std::string& url) {
  const size_t scheme = S3SchemeLength(url);
  if (scheme == 0) {
    return Status::InvalidArgument("not an s3:// URL: '" + url + "'");
  }
  const std::string_view rest = std::string_view(url).substr(scheme);
  const size_t slash = rest.find('/');
  S3Url out;
  out.bucket = std::string(rest.substr(0, slash));
  if (slash != std::string_view::npos) out.key = std::string(rest.substr(slash + 1));
  const std::string& b = out.bucket;
  if (b.empty()) {
    return Status::InvalidArgument("no bucket in '" + url + "' (expected s3://bucket/prefix)");
  }
  // The current rules are 3-63 of [a-z0-9.-]; older buckets in us-east-1 may be up to 255
  // characters and contain upper case and '_', so only what can never be a bucket is refused.
  bool valid = b.size() >= 3 && b.size() <= 255;
  for (char c : b) valid = valid && IsBucketChar(c);
  valid = valid && b.front() != '.' && b.front() != '-' && b.back() != '.' && b.back() != '-';
  if (!valid) {
    return Status::InvalidArgument("invalid bucket name '" + b + "' in '" + url +
                                   "' (bucket names are 3-63 lower-case letters, digits, '.' "
                                   "and '-', not starting or ending with '.' or '-'; buckets "
                                   "made in us-east-1 before 2018 may also have upper case "
                                   "and '_', up to 255 characters)");
  }
  return out;
}

}  // namespace orchard
