// Internals of the S3 client shared by s3_client.cc, s3_storage.cc, s3_upload.cc,
// s3_credentials.cc and their tests.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "orchard/s3.h"
#include "orchard/s3_credentials.h"
#include "storage/s3_http.h"
#include "storage/s3_xml.h"
#include "storage/sigv4.h"

namespace orchard::s3internal {

// ---- Environment and shared files ----------------------------------------------------------

// The variable's value, or "" when unset.
std::string GetEnv(const char* name);
// $AWS_PROFILE, else $AWS_DEFAULT_PROFILE, else "default".
std::string ProfileName();
// $AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials; $AWS_CONFIG_FILE or ~/.aws/config.
std::string SharedCredentialsFile();
std::string SharedConfigFile();

// An INI file as the AWS CLI reads it: section -> key -> value. Section names have their
// inner whitespace collapsed ("[ profile  a ]" -> "profile a"); keys are lower-cased;
// values are trimmed; '#' and ';' lines are comments; a later duplicate key wins; lines
// before the first section, without '=', or in a malformed "[..." header's section are
// ignored; indented lines (nested settings such as "s3 =\n  addressing_style = path") are
// skipped. Pure: any text parses (fuzzed).
using IniFile = std::map<std::string, std::map<std::string, std::string>>;
IniFile ParseIni(std::string_view text);
// ParseIni of the file; empty when the file does not exist or cannot be read.
IniFile ReadIniFile(const std::string& path);
// The section of `profile` in the config file: "[profile name]", or "[default]".
const std::map<std::string, std::string>* ConfigProfile(const IniFile& config,
                                                        const std::string& profile);

// `text` with every occurrence of the secret access key and the session token of
// `credentials` replaced by "[redacted]" (a last guard for messages built from responses).
std::string RedactSecrets(std::string text, const AwsCredentials& credentials);

// "2017-05-17T15:09:54Z" -> time point. A fraction of a second is accepted (and dropped),
// so are "+01:00"/"-0130" offsets (applied) and no zone (UTC). nullopt for anything else: other
// field widths, a date or time the calendar does not have, trailing text, a time before
// 1970. A time past system_clock's range (year 2262) reads as time_point::max().
std::optional<std::chrono::system_clock::time_point> ParseIso8601(std::string_view text);

// ---- STS AssumeRole -------------------------------------------------------------------------

struct AssumeRoleRequest {
  std::string role_arn;
  std::string session_name;
  std::string external_id;   // "" = none
  int duration_seconds = 0;  // 0 = STS's default (one hour)
  // "https://sts.<region>.amazonaws.com" or a custom endpoint (scheme://host[:port][/path]).
  std::string endpoint;
  std::string region;   // the signing region
  std::string profile;  // the profile that names the role, for messages
};

// The STS endpoint for a role profile: $AWS_ENDPOINT_URL_STS, else $AWS_ENDPOINT_URL, else
// the profile's `sts_endpoint_url`, else its `endpoint_url`, else
// https://sts.<region>.amazonaws.com.
std::string StsEndpoint(const std::map<std::string, std::string>& profile,
                        const std::string& region);

// One STS AssumeRole call (POST, form body, SigV4 for service "sts") signed with `source`;
// tried up to 3 times on transient failures (HTTP 5xx, throttling, connection errors).
// Errors are kIOError (kInvalidArgument for a malformed endpoint) and name the role, the
// profile, the endpoint, the HTTP status, STS's code and message and the source identity
// (redacted); they never contain a secret.
Result<AwsCredentials> AssumeRole(HttpClient& http, const AssumeRoleRequest& request,
                                  const AwsCredentials& source);

// ---- The client ----------------------------------------------------------------------------

// One S3 operation, before addressing and signing.
struct S3Request {
  std::string operation;  // "GetObject", for messages
  std::string method;
  std::string bucket;
  std::string key;
  bool bucket_level = false;  // ListObjectsV2: the path is the bucket, not an object
  sigv4::Pairs query;         // decoded
  sigv4::Pairs headers;       // extra headers to send and sign (Range, Content-Type...)
  std::string_view body;
  uint64_t max_response_bytes = 64ull << 20;
  // CompleteMultipartUpload may answer 200 with an <Error> document.
  bool error_in_ok_body = false;
  // Non-2xx statuses that are answers rather than failures (412 to a conditional PUT):
  // returned as a response at once, without retries.
  std::vector<int> answer_statuses;
  // The location named in messages, e.g. "s3://bucket/prefix"; default s3://bucket/key.
  std::string location;

  // A request on one object: `operation` names it in messages.
  static S3Request ForObject(std::string operation, std::string method, const S3Url& url) {
    S3Request r;
    r.operation = std::move(operation);
    r.method = std::move(method);
    r.bucket = url.bucket;
    r.key = url.key;
    return r;
  }
};

// Test hook: called before every attempt; returning an error makes that attempt fail with
// it instead of being sent.
using FaultInjector = std::function<std::optional<S3Error>(const S3Request&, int attempt)>;

}  // namespace orchard::s3internal

namespace orchard {

struct S3Client::Impl {
  S3Options options;
  std::shared_ptr<CredentialsProvider> credentials;
  std::shared_ptr<RetryPolicy> retry;
  std::unique_ptr<s3internal::HttpClient> http;

  // The parsed endpoint: "" scheme when on AWS.
  std::string scheme;
  std::string host;       // host[:port] as in the endpoint
  std::string base_path;  // path of the endpoint, without a trailing '/'
  bool on_aws = true;

  std::mutex mu;
  std::map<std::string, std::string> bucket_regions;  // learned from x-amz-bucket-region
  s3internal::FaultInjector fault_injector;           // tests only

  bool Cancelled() const { return options.cancel != nullptr && options.cancel->load(); }
  // Sends with signing and retries. Returns the 2xx response, or a Status that names the
  // location, status, S3 code and attempts. Thread-safe.
  Result<s3internal::HttpResponse> Send(const s3internal::S3Request& request);

  Status ListObjects(const std::string& bucket, const std::string& prefix,
                     const std::function<Status(const ObjectInfo&)>& visit);
  Result<std::vector<uint8_t>> GetObject(const S3Url& url);
  Status PutObject(const S3Url& url, std::string_view bytes);
  Result<bool> PutObjectIfAbsent(const S3Url& url, std::string_view bytes);
  Status UploadFile(const std::string& local_path, const S3Url& url);
  Status DownloadFile(const S3Url& url, const std::string& local_path);
  Result<bool> ObjectExists(const S3Url& url);
  Status DeleteObject(const S3Url& url);
  Status CheckWritable(const S3Url& url);
  Result<std::string> CreateMultipartUpload(const S3Url& url);
  Status AbortMultipartUpload(const S3Url& url, const std::string& upload_id);
  // Upload ids of unfinished multipart uploads below `prefix` (tests check aborts).
  Result<std::vector<std::string>> ListMultipartUploads(const std::string& bucket,
                                                        const std::string& prefix);

  // A source of part bytes: fills `scratch` or points into caller memory.
  using PartReader =
      std::function<Result<std::string_view>(uint64_t offset, uint64_t size, std::string& scratch)>;
  Status PutSingle(const S3Url& url, std::string_view bytes);
  Status PutMultipart(const S3Url& url, uint64_t size, const PartReader& read);

  // The part size used for an upload of `size` bytes.
  uint64_t PartSize(uint64_t size) const;

 private:
  std::string RegionFor(const std::string& bucket);
  // The Status for a request that failed with `error` after `attempts` attempts: its code
  // from the HTTP status and S3 code, a message naming the operation, the location and
  // the credentials' redacted identity (when given), with their secrets redacted.
  Status ErrorStatus(const s3internal::S3Request& request, const S3Error& error, int attempts,
                     const AwsCredentials* credentials) const;
};

}  // namespace orchard
