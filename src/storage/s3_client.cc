// S3Client: addressing, signing, sending with retries, and error mapping.
#include <algorithm>
#include <chrono>
#include <thread>

#include "orchard/s3.h"
#include "storage/s3_internal.h"
#include "storage/sigv4.h"

namespace orchard {

using s3internal::GetEnv;
using s3internal::HttpOutcome;
using s3internal::HttpRequest;
using s3internal::HttpResponse;
using s3internal::S3Request;

namespace {

#ifdef ORCHARD_VERSION
constexpr char kUserAgent[] = "orchard/" ORCHARD_VERSION;
#else
constexpr char kUserAgent[] = "orchard";
#endif

// Buckets that can be a DNS label under s3.<region>.amazonaws.com with a valid TLS
// certificate: no dots, no upper case.
bool IsDnsCompatibleBucket(const std::string& b) {
  if (b.size() < 3 || b.size() > 63) return false;
  for (char c : b) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return b.front() != '-' && b.back() != '-';
}

bool IsPermissionCode(const std::string& code) {
  for (const char* c :
       {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
        "InvalidToken", "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem",
        "RequestTimeTooSkewed", "InvalidSecurity", "Unauthorized"}) {
    if (code == c) return true;
  }
  return false;
}

std::string PermissionHint(const std::string& code) {
  if (code == "InvalidAccessKeyId") return "; the access key id is not known to this endpoint";
  if (code == "SignatureDoesNotMatch") {
    return "; the secret access key does not belong to this access key id";
  }
  if (code == "ExpiredToken" || code == "TokenRefreshRequired") {
    return "; the session token has expired";
  }
  if (code == "RequestTimeTooSkewed") return "; this machine's clock is wrong";
  return "";
}

}  // namespace

// ---- Options ----------------------------------------------------------------------------

Result<S3Options> S3OptionsFromEnvironment() {
  S3Options o;
  o.endpoint = GetEnv("AWS_ENDPOINT_URL_S3");
  if (o.endpoint.empty()) o.endpoint = GetEnv("AWS_ENDPOINT_URL");
  if (!o.endpoint.empty() && o.endpoint.rfind("http://", 0) != 0 &&
      o.endpoint.rfind("https://", 0) != 0) {
    return Status::InvalidArgument("S3 endpoint '" + o.endpoint +
                                   "' must start with http:// or https://");
  }
  o.region = GetEnv("AWS_REGION");
  if (o.region.empty()) o.region = GetEnv("AWS_DEFAULT_REGION");
  if (o.region.empty()) {
    const auto config = s3internal::ReadIniFile(s3internal::SharedConfigFile());
    if (const auto* profile = s3internal::ConfigProfile(config, s3internal::ProfileName())) {
      auto it = profile->find("region");
      if (it != profile->end()) o.region = it->second;
    }
  }
  if (o.region.empty()) o.region = "us-east-1";
  o.ca_bundle = GetEnv("AWS_CA_BUNDLE");
  return o;
}

// ---- Client -----------------------------------------------------------------------------

S3Client::S3Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
S3Client::~S3Client() = default;
const S3Options& S3Client::options() const { return impl_->options; }

Result<std::shared_ptr<S3Client>> S3Client::Make(const S3Options& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  S3Options& o = impl->options;
  if (o.region.empty()) o.region = "us-east-1";
  o.max_attempts = std::max(1, o.max_attempts);
  o.upload_concurrency = std::max(1, o.upload_concurrency);
  if (!o.endpoint.empty()) {
    const size_t sep = o.endpoint.find("://");
    const std::string scheme = sep == std::string::npos ? "" : o.endpoint.substr(0, sep);
    if (scheme != "http" && scheme != "https") {
      return Status::InvalidArgument("S3 endpoint '" + o.endpoint +
                                     "' must start with http:// or https://");
    }
    const std::string rest = o.endpoint.substr(sep + 3);
    const size_t slash = rest.find('/');
    impl->scheme = scheme;
    impl->host = rest.substr(0, slash);
    impl->base_path = slash == std::string::npos ? "" : rest.substr(slash);
    while (!impl->base_path.empty() && impl->base_path.back() == '/') impl->base_path.pop_back();
    if (impl->host.empty()) {
      return Status::InvalidArgument("S3 endpoint '" + o.endpoint + "' has no host");
    }
    impl->on_aws = false;
  }
  impl->credentials = o.credentials ? o.credentials : MakeDefaultCredentialsChain();
  impl->retry = o.retry ? o.retry : MakeStandardRetryPolicy();
  // Fail now, with the chain's explanation, rather than on the first request.
  Result<AwsCredentials> credentials = impl->credentials->Get();
  if (!credentials.ok()) return credentials.status();

  s3internal::HttpClientOptions http;
  http.max_connections = o.max_connections;
  http.connect_timeout_s = o.connect_timeout_s;
  http.low_speed_time_s = o.request_timeout_s;
  ORCHARD_ASSIGN_OR_RETURN(const s3internal::CaCertificates ca,
                           s3internal::CaCertificatesFromEnvironment(o.ca_bundle));
  http.ca_bundle = ca.file;
  http.ca_path = ca.dir;
  http.user_agent = kUserAgent;
  http.cancel = o.cancel;
  impl->http = std::make_unique<s3internal::HttpClient>(http);
  return std::shared_ptr<S3Client>(new S3Client(std::move(impl)));
}

std::string S3Client::Impl::RegionFor(const std::string& bucket) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = bucket_regions.find(bucket);
  return it != bucket_regions.end() ? it->second : options.region;
}

Result<HttpResponse> S3Client::Impl::Send(const S3Request& req) {
  const bool virtual_hosted = options.addressing == S3Options::Addressing::kVirtualHosted ||
                              (options.addressing == S3Options::Addressing::kAuto && on_aws &&
                               IsDnsCompatibleBucket(req.bucket));
  bool region_corrected = false;
  const std::string payload_hash = sigv4::Sha256Hex(req.body);
  for (int attempt = 1;; ++attempt) {
    Result<AwsCredentials> creds = credentials->Get();
    if (!creds.ok()) {
      return creds.status().WithContext(
          req.operation + " " +
          (req.location.empty() ? "s3://" + req.bucket + "/" + req.key : req.location));
    }
    const std::string region = RegionFor(req.bucket);

    // Where the request goes.
    std::string host;
    std::string url_scheme = "https";
    if (on_aws) {
      host = virtual_hosted ? req.bucket + ".s3." + region + ".amazonaws.com"
                            : "s3." + region + ".amazonaws.com";
    } else {
      host = virtual_hosted ? req.bucket + "." + this->host : this->host;
      url_scheme = scheme;
    }
    std::string path = base_path;
    if (!virtual_hosted) path += "/" + sigv4::UriEncode(req.bucket, false);
    if (!req.bucket_level) {
      path += "/" + sigv4::UriEncode(req.key, /*keep_slash=*/true);
    } else if (path.empty()) {
      path = "/";
    }

    sigv4::Request to_sign;
    to_sign.method = req.method;
    to_sign.path = path;
    to_sign.query = req.query;
    to_sign.headers = req.headers;
    to_sign.headers.emplace_back("Host", host);
    to_sign.payload_hash = payload_hash;
    sigv4::SigningParams params;
    params.region = region;
    params.service = "s3";
    params.unix_time = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    const sigv4::Signature signature = sigv4::SignHeaders(to_sign, *creds, params);

    HttpRequest http_request;
    http_request.method = req.method;
    http_request.url = url_scheme + "://" + host + path;
    // The wire query is the canonical one (sorted, encoded the same way), so what is sent
    // is exactly what was signed. Empty values are sent as "?uploads", as AWS SDKs do.
    std::string query;
    {
      std::vector<std::pair<std::string, std::string>> encoded;
      for (const auto& [k, v] : req.query) {
        encoded.emplace_back(sigv4::UriEncode(k, false), sigv4::UriEncode(v, false));
      }
      std::sort(encoded.begin(), encoded.end());
      for (const auto& [k, v] : encoded) {
        query += (query.empty() ? "" : "&") + k + (v.empty() ? "" : "=" + v);
      }
    }
    if (!query.empty()) http_request.url += "?" + query;
    http_request.headers = to_sign.headers;
    http_request.headers.insert(http_request.headers.end(), signature.headers.begin(),
                                signature.headers.end());
    http_request.body = req.body;
    http_request.max_response_bytes = req.max_response_bytes;

    if (Cancelled()) return Status::Cancelled(req.operation + " cancelled");
    S3Error error;
    std::optional<S3Error> injected;
    if (fault_injector) injected = fault_injector(req, attempt);
    if (injected.has_value()) {
      error = *injected;
    } else {
      HttpOutcome out = http->Perform(http_request);
      if (!out.ok) {
        error = out.error;
      } else {
        HttpResponse& response = out.response;
        const int status = response.status;
        const bool success = status >= 200 && status < 300;
        if (success &&
            !(req.error_in_ok_body && s3internal::ParseS3ErrorBody(response.BodyText(), &error))) {
          return std::move(response);
        }
        if (!success && std::find(req.answer_statuses.begin(), req.answer_statuses.end(), status) !=
                            req.answer_statuses.end()) {
          return std::move(response);
        }
        error.http_status = status;
        // An error document gives code, message and request id; anything else (a proxy's
        // HTML page) is quoted briefly, with token-like runs redacted.
        if (!success && !s3internal::ParseS3ErrorBody(response.BodyText(), &error) &&
            !response.body.empty()) {
          error.message = "unexpected response \"";
          error.message.append(s3internal::BodyExcerpt(response.BodyText())).append("\"");
        }
        if (error.request_id.empty()) {
          if (const std::string* id = response.Header("x-amz-request-id")) error.request_id = *id;
        }
        // A bucket in another region: AWS says which in x-amz-bucket-region. Learn it and
        // try again at once (not counted as an attempt).
        const std::string* bucket_region = response.Header("x-amz-bucket-region");
        if (on_aws && !region_corrected && bucket_region != nullptr && *bucket_region != region &&
            (status == 301 || status == 307 || status == 400)) {
          std::lock_guard<std::mutex> lock(mu);
          bucket_regions[req.bucket] = *bucket_region;
          region_corrected = true;
          --attempt;
          continue;
        }
      }
    }
    if (attempt >= options.max_attempts || !retry->ShouldRetry(error, attempt)) {
      return ErrorStatus(req, error, attempt, &*creds);
    }
    if (Cancelled()) return Status::Cancelled(req.operation + " cancelled");
    // The back-off in slices, so that Ctrl-C does not wait for it.
    const auto until =
        std::chrono::steady_clock::now() + retry->DelayBeforeNextRetry(error, attempt);
    while (std::chrono::steady_clock::now() < until && !Cancelled()) {
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          std::chrono::milliseconds(50), until - std::chrono::steady_clock::now()));
    }
  }
}

Status S3Client::Impl::ErrorStatus(const S3Request& req, const S3Error& error, int attempts,
                                   const AwsCredentials* credentials) const {
  const std::string where =
      req.location.empty() ? "s3://" + req.bucket + "/" + req.key : req.location;
  // A last guard: a server or proxy that echoes the request must not put a secret into
  // the message.
  std::string detail = credentials != nullptr
                           ? s3internal::RedactSecrets(error.ToString(), *credentials)
                           : error.ToString();
  if (attempts > 1) detail += "; gave up after " + std::to_string(attempts) + " attempts";
  const std::string what = req.operation + " " + where;
  if (error.transport == S3Error::Transport::kTooLarge) {
    return Status::ResourceExhausted(what + ": " + detail);
  }
  if (error.http_status == 404 || error.code == "NoSuchKey" || error.code == "NoSuchBucket") {
    if (error.code == "NoSuchBucket") {
      return Status::NotFound("bucket '" + req.bucket + "' does not exist (" + what + ": " +
                              detail + ")");
    }
    if (error.code == "NoSuchUpload") return Status::NotFound(what + ": " + detail);
    return Status::NotFound("not found: " + what + " (" + detail + ")");
  }
  if (error.http_status == 403 || error.http_status == 401 || IsPermissionCode(error.code)) {
    std::string message = "permission denied: " + what + " (" + detail + ")";
    message += PermissionHint(error.code);
    if (credentials != nullptr) message += "; using " + credentials->Redacted();
    return Status::IOError(message);
  }
  if (error.http_status == 412) {  // only ranged downloads send a condition (If-Match)
    return Status::IOError(what + ": the object was replaced while it was being read (" + detail +
                           ")");
  }
  if (error.http_status == 301 && !on_aws) {
    return Status::IOError(what + ": " + detail +
                           "; the endpoint redirects this bucket "
                           "elsewhere (wrong region or addressing style?)");
  }
  return Status::IOError(what + " failed: " + detail);
}

Result<bool> S3Client::Impl::ObjectExists(const S3Url& url) {
  S3Request r = S3Request::ForObject("HeadObject", "HEAD", url);
  Result<HttpResponse> response = Send(r);
  if (response.ok()) return true;
  if (response.status().code() == StatusCode::kNotFound) return false;
  return response.status();
}

Status S3Client::Impl::DeleteObject(const S3Url& url) {
  S3Request r = S3Request::ForObject("DeleteObject", "DELETE", url);
  Result<HttpResponse> response = Send(r);
  if (!response.ok()) {
    const Status& st = response.status();
    // S3 deletes of missing keys succeed; some stores answer 404 NoSuchKey instead.
    if (st.code() == StatusCode::kNotFound &&
        st.message().find("NoSuchBucket") == std::string::npos) {
      return Status::OK();
    }
    return st;
  }
  return Status::OK();
}

Status S3Client::ListObjects(const std::string& bucket, const std::string& prefix,
                             const std::function<Status(const ObjectInfo&)>& visit) {
  return impl_->ListObjects(bucket, prefix, visit);
}
Result<std::vector<uint8_t>> S3Client::GetObject(const S3Url& url) { return impl_->GetObject(url); }
Status S3Client::PutObject(const S3Url& url, std::string_view bytes) {
  return impl_->PutObject(url, bytes);
}
Result<bool> S3Client::PutObjectIfAbsent(const S3Url& url, std::string_view bytes) {
  return impl_->PutObjectIfAbsent(url, bytes);
}
Status S3Client::UploadFile(const std::string& local_path, const S3Url& url) {
  return impl_->UploadFile(local_path, url);
}
Result<bool> S3Client::ObjectExists(const S3Url& url) { return impl_->ObjectExists(url); }
Status S3Client::DeleteObject(const S3Url& url) { return impl_->DeleteObject(url); }
Status S3Client::CheckWritable(const S3Url& url) { return impl_->CheckWritable(url); }

// ---- One-shot helpers ---------------------------------------------------------------------

Result<std::vector<uint8_t>> GetObject(const std::string& url, const S3Options& options) {
  ORCHARD_ASSIGN_OR_RETURN(S3Url parsed, ParseS3Url(url));
  ORCHARD_ASSIGN_OR_RETURN(auto client, S3Client::Make(options));
  return client->GetObject(parsed);
}

Status PutObject(const std::string& url, std::string_view bytes, const S3Options& options) {
  ORCHARD_ASSIGN_OR_RETURN(S3Url parsed, ParseS3Url(url));
  ORCHARD_ASSIGN_OR_RETURN(auto client, S3Client::Make(options));
  return client->PutObject(parsed, bytes);
}

Status UploadFile(const std::string& local_path, const std::string& url, const S3Options& options) {
  ORCHARD_ASSIGN_OR_RETURN(S3Url parsed, ParseS3Url(url));
  ORCHARD_ASSIGN_OR_RETURN(auto client, S3Client::Make(options));
  return client->UploadFile(local_path, parsed);
}

Result<bool> ObjectExists(const std::string& url, const S3Options& options) {
  ORCHARD_ASSIGN_OR_RETURN(S3Url parsed, ParseS3Url(url));
  ORCHARD_ASSIGN_OR_RETURN(auto client, S3Client::Make(options));
  return client->ObjectExists(parsed);
}

Status DeleteObject(const std::string& url, const S3Options& options) {
  ORCHARD_ASSIGN_OR_RETURN(S3Url parsed, ParseS3Url(url));
  ORCHARD_ASSIGN_OR_RETURN(auto client, S3Client::Make(options));
  return client->DeleteObject(parsed);
}

Status CheckWritable(const std::string& url, const S3Options& options) {
  ORCHARD_ASSIGN_OR_RETURN(S3Url parsed, ParseS3Url(url));
  ORCHARD_ASSIGN_OR_RETURN(auto client, S3Client::Make(options));
  return client->CheckWritable(parsed);
}

}  // namespace orchard
