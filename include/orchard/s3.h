// The native S3 client: Storage over ListObjectsV2/GetObject, uploads, and the options
// that locate and authenticate a bucket. Requests are signed with AWS Signature V4 and sent
// with libcurl; no AWS SDK is involved. Works with AWS and with S3-compatible stores
// (SeaweedFS, MinIO, Ceph RGW, moto) through S3Options::endpoint. See docs/s3.md.
//
// Thread safety: an S3Client and the Storage returned by OpenS3Storage are safe for
// concurrent calls from many threads; connections are pooled and reused across calls.
//
// Errors: a missing object or bucket is kNotFound; refused permission, bad credentials,
// network and server failures are kIOError; an object larger than
// S3Options::max_object_bytes is kResourceExhausted; a malformed URL or option is
// kInvalidArgument. Messages name the s3:// location, the HTTP status, the S3 error code
// and, after retries, the attempt count; they never contain a secret.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "orchard/s3_credentials.h"
#include "orchard/status.h"
#include "orchard/storage.h"

namespace orchard {

// ---- URLs -------------------------------------------------------------------------------

// "s3://bucket/some/key" -> {bucket, "some/key"}. The key is taken verbatim (not
// percent-decoded) and may be empty ("s3://bucket" or "s3://bucket/").
struct S3Url {
  std::string bucket;
  std::string key;
  std::string ToString() const { return "s3://" + bucket + "/" + key; }
};

// True for "s3://", and for the Hadoop spellings "s3a://" and "s3n://" (any case).
bool IsS3Url(const std::string& url);

// kInvalidArgument unless `url` is an s3 URL with a valid bucket name (3-255 characters of
// letters, digits, '.', '-', '_'; no leading or trailing '.' or '-').
Result<S3Url> ParseS3Url(const std::string& url);

// ---- Retries ----------------------------------------------------------------------------

// What went wrong with one attempt of a request, as seen by the retry policy.
struct S3Error {
  enum class Transport {
    kNone,           // an HTTP response was received: see http_status and code
    kConnectFailed,  // the TCP/TLS connection could not be made (refused, unreachable)
    kDnsFailed,      // the host name did not resolve
    kReset,          // the connection broke while sending or receiving
    kTimeout,        // connect timeout, or no progress for request_timeout_s
    kTruncated,      // fewer body bytes than Content-Length
    kTooLarge,       // the body exceeded the configured cap
    kTls,            // certificate or TLS failure
    kOther,
  };
  Transport transport = Transport::kNone;
  int http_status = 0;  // 0 when no response was received
  std::string code;     // the S3 <Code>, e.g. "SlowDown", or a transport name
  std::string message;  // the S3 <Message>, or libcurl's description
  std::string request_id;

  // "HTTP 503 SlowDown: Please reduce your request rate." or "connection reset: ...".
  std::string ToString() const;
};

// Decides whether and when a failed attempt is tried again; injectable like Arrow's
// S3RetryStrategy. Implementations must be thread-safe (one policy serves all requests).
class RetryPolicy {
 public:
  virtual ~RetryPolicy() = default;
  // `attempt` is the 1-based number of the attempt that just failed. The client also stops
  // after S3Options::max_attempts, whatever this returns.
  virtual bool ShouldRetry(const S3Error& error, int attempt) const = 0;
  // Time to wait before attempt `attempt + 1`.
  virtual std::chrono::milliseconds DelayBeforeNextRetry(const S3Error& error,
                                                         int attempt) const = 0;
};

// AWS "standard" retry mode: retries HTTP 5xx and 429, throttling and timeout codes
// (SlowDown, Throttling*, RequestTimeout, InternalError, ...), connection failures and
// resets, timeouts and truncated bodies; never 4xx such as AccessDenied or NoSuchKey, DNS
// failures or TLS certificate errors. Delay: full jitter, uniform in
// [0, min(max_delay, base_delay * 2^(attempt-1))]. Tests pass base_delay = 0.
std::shared_ptr<RetryPolicy> MakeStandardRetryPolicy(
    std::chrono::milliseconds base_delay = std::chrono::milliseconds(100),
    std::chrono::milliseconds max_delay = std::chrono::milliseconds(20000));

// True when the standard policy considers `error` transient.
bool IsRetryableS3Error(const S3Error& error);

// ---- Options ----------------------------------------------------------------------------

struct S3Options {
  enum class Addressing {
    kAuto,           // virtual-hosted on AWS when the bucket name is DNS-compatible (no
                     // dots), path-style on custom endpoints
    kVirtualHosted,  // https://bucket.host/key
    kPath,           // https://host/bucket/key
  };

  // "" = AWS (https://s3.<region>.amazonaws.com); else e.g. "http://127.0.0.1:8333". From
  // --s3-endpoint, $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL.
  std::string endpoint;
  // From $AWS_REGION, $AWS_DEFAULT_REGION or the profile's `region`; "" means us-east-1.
  // On AWS a bucket in another region is detected from the x-amz-bucket-region header
  // and used automatically.
  std::string region;
  Addressing addressing = Addressing::kAuto;
  // Attempts per request, first one included. 5 rather than the AWS standard mode's 3:
  // a batch run makes millions of requests, and one that gives up turns an image into an
  // error row or fails a Spark task, which costs far more than a few seconds of backoff.
  int max_attempts = 5;
  std::shared_ptr<RetryPolicy> retry;  // null = MakeStandardRetryPolicy()
  // Connections kept open per client; more concurrent requests wait for a free one.
  int max_connections = 16;
  double connect_timeout_s = 10;
  // A request fails (and may be retried) when no byte moves for this long. A low-speed
  // limit rather than a total timeout, so that large bodies are never cut off.
  double request_timeout_s = 30;
  std::shared_ptr<CredentialsProvider> credentials;  // null = MakeDefaultCredentialsChain()
  // Uploads of at least this many bytes use multipart upload.
  uint64_t multipart_threshold = 16ull << 20;
  // Multipart part size; raised to 8 MiB at least, and so that there are <= 10000 parts.
  uint64_t part_size = 16ull << 20;
  // Parts uploaded at once per upload; memory used is about this times part_size.
  int upload_concurrency = 4;
  // GetObject/Read refuse larger objects (kResourceExhausted) instead of filling memory.
  uint64_t max_object_bytes = 2ull << 30;
  // A CA bundle file for TLS ($AWS_CA_BUNDLE); an error when it does not exist. "" = the
  // first of $SSL_CERT_FILE, $SSL_CERT_DIR (a folder) and the system bundle of Debian,
  // Red Hat / Amazon Linux, SUSE or Alpine that exists, else libcurl's default.
  std::string ca_bundle;
  // When set (Ctrl-C), requests stop within about a second, even a stalled transfer or a
  // retry's back-off, and fail with kCancelled. Not owned; must outlive the client.
  const std::atomic<bool>* cancel = nullptr;
};

// Options from the environment and the shared config file: endpoint from
// $AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL, region from $AWS_REGION / $AWS_DEFAULT_REGION /
// the `region` of profile $AWS_PROFILE (or default) in $AWS_CONFIG_FILE (~/.aws/config),
// else us-east-1, CA bundle from $AWS_CA_BUNDLE. kInvalidArgument for a malformed endpoint.
Result<S3Options> S3OptionsFromEnvironment();

// ---- Client -----------------------------------------------------------------------------

class S3Client {
 public:
  // Resolves credentials once so that a missing or broken setup fails here, with the
  // message of the credentials chain. kInvalidArgument for bad options.
  static Result<std::shared_ptr<S3Client>> Make(const S3Options& options);
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  // Calls `visit` for every object whose key starts with `prefix`, in byte order of the key
  // (S3's order), streaming ListObjectsV2 pages of up to 1000 keys. Stops early and returns
  // the visitor's status if it is not OK. ObjectInfo::key is the full key.
  Status ListObjects(const std::string& bucket, const std::string& prefix,
                     const std::function<Status(const ObjectInfo&)>& visit);
  // The whole object.
  Result<std::vector<uint8_t>> GetObject(const S3Url& url);
  // Creates or replaces the object; multipart at or above multipart_threshold. The object
  // appears whole or not at all: a failed multipart upload is aborted.
  Status PutObject(const S3Url& url, std::string_view bytes);
  // Creates the object only if no object has that key: true if this call created it,
  // false if one existed (another writer won). A single PUT with "If-None-Match: *" (S3
  // honours it since August 2024: 412 PreconditionFailed means the key exists; a 409
  // ConditionalRequestConflict is retried once, then counts as lost), preceded by a HEAD
  // and followed by a GET that compares the stored bytes with `bytes`: on a store that
  // ignores the header, the HEAD keeps an existing object from being overwritten and the
  // GET tells which of two racing writers' bytes are there. Put a unique token (a random
  // nonce, a run id) in `bytes`: two writers with identical bytes cannot be told apart. At
  // most 5 GiB. On stores that ignore If-None-Match, writers racing within one request's
  // time may both see true (see docs/s3.md).
  Result<bool> PutObjectIfAbsent(const S3Url& url, std::string_view bytes);
  // Uploads a local file like PutObject, reading it in parts (memory stays bounded).
  Status UploadFile(const std::string& local_path, const S3Url& url);
  // Writes the object to a local file, atomically (a temporary name renamed when complete),
  // in ranged GETs of part_size (at least 1 MiB): memory stays bounded whatever the size.
  // Fails, writing nothing, if the object is replaced during the download (If-Match).
  Status DownloadFile(const S3Url& url, const std::string& local_path);
  // HEAD: true if the object exists, false on 404; other failures are errors.
  Result<bool> ObjectExists(const S3Url& url);
  // Deleting a missing object is not an error (S3 semantics).
  Status DeleteObject(const S3Url& url);
  // Checks, before a long run, that objects can be written at `url`: starts a multipart
  // upload there and aborts it, which needs only s3:PutObject and s3:AbortMultipartUpload
  // and leaves nothing behind.
  Status CheckWritable(const S3Url& url);

  const S3Options& options() const;

  struct Impl;
  Impl* impl() { return impl_.get(); }  // for the implementation and its tests

 private:
  explicit S3Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---- Storage and one-shot helpers -------------------------------------------------------

// The objects below "s3://bucket/prefix" as a Storage. A non-empty prefix is a folder:
// "s3://b/fruits" and "s3://b/fruits/" both list "fruits/..." (not "fruits-old/..."), with
// keys relative to it, like local storage; Describe(key) is "s3://b/fruits/<key>". A prefix
// with no objects lists nothing. Zero-byte keys ending in '/' (folder markers made by the
// S3 console) are not listed. Resolves credentials but sends no request.
Result<std::unique_ptr<Storage>> OpenS3Storage(const std::string& url, const S3Options& options);
Result<std::unique_ptr<Storage>> OpenS3Storage(const std::string& url,
                                               std::shared_ptr<S3Client> client);

// One-shot helpers for the CLI (--model s3://..., outputs to s3://...): each makes a client.
Result<std::vector<uint8_t>> GetObject(const std::string& url, const S3Options& options);
Status PutObject(const std::string& url, std::string_view bytes, const S3Options& options);
Status UploadFile(const std::string& local_path, const std::string& url, const S3Options& options);
Status DownloadFile(const std::string& url, const std::string& local_path,
                    const S3Options& options);
Result<bool> ObjectExists(const std::string& url, const S3Options& options);
Status DeleteObject(const std::string& url, const S3Options& options);
Status CheckWritable(const std::string& url, const S3Options& options);

// A local folder or an s3:// prefix, whichever `location` names.
Result<std::unique_ptr<Storage>> OpenStorage(const std::string& location, const S3Options& s3);

}  // namespace orchard
