// STS AssumeRole for role profiles: one signed POST, its retries and its error messages.
#include <chrono>
#include <thread>

#include "storage/s3_internal.h"
#include "storage/s3_xml.h"
#include "storage/sigv4.h"

namespace orchard::s3internal {
namespace {

constexpr int kAttempts = 3;

// application/x-www-form-urlencoded, with SigV4's encoding (every reserved byte as %XX).
std::string FormBody(const sigv4::Pairs& fields) {
  std::string body;
  for (const auto& [name, value] : fields) {
    if (!body.empty()) body.push_back('&');
    body.append(sigv4::UriEncode(name, false)).append("=").append(sigv4::UriEncode(value, false));
  }
  return body;
}

bool IsPermission(const S3Error& e) {
  return e.http_status == 401 || e.http_status == 403 || e.code == "AccessDenied" ||
         e.code == "InvalidClientTokenId" || e.code == "SignatureDoesNotMatch" ||
         e.code == "ExpiredToken";
}

}  // namespace

std::string StsEndpoint(const std::map<std::string, std::string>& profile,
                        const std::string& region) {
  for (const char* name : {"AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"}) {
    std::string v = GetEnv(name);
    if (!v.empty()) return v;
  }
  for (const char* key : {"sts_endpoint_url", "endpoint_url"}) {
    auto it = profile.find(key);
    if (it != profile.end() && !it->second.empty()) return it->second;
  }
  std::string endpoint = "https://sts.";
  endpoint.append(region.empty() ? "us-east-1" : region).append(".amazonaws.com");
  return endpoint;
}

Result<AwsCredentials> AssumeRole(HttpClient& http, const AssumeRoleRequest& request,
                                  const AwsCredentials& source) {
  std::string what = "AssumeRole ";
  what.append(request.role_arn)
      .append(" (profile '")
      .append(request.profile)
      .append("') at ")
      .append(request.endpoint);

  const size_t sep = request.endpoint.find("://");
  const std::string scheme = sep == std::string::npos ? "" : request.endpoint.substr(0, sep);
  if (scheme != "http" && scheme != "https") {
    return Status::InvalidArgument(what + ": the STS endpoint must start with http:// or https://");
  }
  const std::string rest = request.endpoint.substr(sep + 3);
  const size_t slash = rest.find('/');
  const std::string host = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.pop_back();
  path.push_back('/');
  if (host.empty()) return Status::InvalidArgument(what + ": the STS endpoint has no host");

  sigv4::Pairs fields = {{"Action", "AssumeRole"},
                         {"RoleArn", request.role_arn},
                         {"RoleSessionName", request.session_name},
                         {"Version", "2011-06-15"}};
  if (!request.external_id.empty()) fields.emplace_back("ExternalId", request.external_id);
  if (request.duration_seconds > 0) {
    fields.emplace_back("DurationSeconds", std::to_string(request.duration_seconds));
  }
  const std::string body = FormBody(fields);

  S3Error error;
  int attempt = 1;
  for (;; ++attempt) {
    sigv4::Request to_sign;
    to_sign.method = "POST";
    to_sign.path = path;
    to_sign.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
                       {"Host", host}};
    to_sign.payload_hash = sigv4::Sha256Hex(body);
    sigv4::SigningParams params;
    params.region = request.region.empty() ? "us-east-1" : request.region;
    params.service = "sts";
    params.normalize_path = true;
    params.double_encode_path = true;
    params.add_content_sha256_header = false;
    params.unix_time = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    const sigv4::Signature signature = sigv4::SignHeaders(to_sign, source, params);

    HttpRequest r;
    r.method = "POST";
    r.url = scheme + "://" + host + path;
    r.headers = to_sign.headers;
    r.headers.insert(r.headers.end(), signature.headers.begin(), signature.headers.end());
    r.body = body;
    r.max_response_bytes = 1 << 20;
    r.total_timeout_s = 60;
    const HttpOutcome out = http.Perform(r);
    error = S3Error();
    if (out.ok) {
      if (out.response.status == 200) {
        Result<AwsCredentials> credentials = ParseAssumeRoleResponse(out.response.BodyText());
        if (!credentials.ok()) {
          return Status::IOError(what + ": " + credentials.status().message());
        }
        return credentials;
      }
      error.http_status = out.response.status;
      if (!ParseS3ErrorBody(out.response.BodyText(), &error) && !out.response.body.empty()) {
        error.message = "unexpected response \"" + BodyExcerpt(out.response.BodyText()) + "\"";
      }
      if (error.request_id.empty()) {
        if (const std::string* id = out.response.Header("x-amzn-requestid")) {
          error.request_id = *id;
        }
      }
    } else {
      error = out.error;
    }
    if (attempt >= kAttempts || !IsRetryableS3Error(error)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100 << attempt));
  }
  std::string detail = error.ToString();
  if (attempt > 1)
    detail.append("; gave up after ").append(std::to_string(attempt)).append(" attempts");
  std::string message = IsPermission(error) ? "permission denied: " : "";
  message.append(what).append(" failed: ").append(detail);
  message.append("; signed with ").append(source.Redacted());
  return Status::IOError(RedactSecrets(std::move(message), source));
}

}  // namespace orchard::s3internal
