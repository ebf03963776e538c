// A small HTTP/1.1 client over libcurl for the S3 client and the credential providers,
// and the choice of CA certificates it verifies TLS servers with. (S3's XML is read in
// s3_xml.h.)
//
// HttpClient keeps a pool of curl easy handles. A handle keeps its connections open after
// a request, so a later request on the same handle reuses the TCP (and TLS) connection;
// DNS results and TLS sessions are shared between handles. Perform() is thread-safe: at
// most max_connections requests run at once, further callers wait for a free handle.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "orchard/s3.h"
#include "storage/sigv4.h"

namespace orchard::s3internal {

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, PUT, POST or DELETE
  std::string url;             // complete and already percent-encoded
  sigv4::Pairs headers;
  std::string_view body;  // sent for PUT and POST; not owned, must outlive Perform()
  // A response body larger than this fails with S3Error::Transport::kTooLarge.
  uint64_t max_response_bytes = 64ull << 20;
  // Overrides of the client's timeouts; < 0 keeps them. total_timeout_s = 0 means none.
  double connect_timeout_s = -1;
  double total_timeout_s = 0;
  // Ignore http_proxy/https_proxy (instance metadata must never go through a proxy); S3
  // requests honour them, as the AWS CLI does.
  bool no_proxy = false;
};

struct HttpResponse {
  int status = 0;
  sigv4::Pairs headers;  // names lower-cased, in order received
  std::vector<uint8_t> body;

  // The first header of that (lower-case) name, or nullptr.
  const std::string* Header(std::string_view lower_name) const;
  std::string_view BodyText() const {
    return {reinterpret_cast<const char*>(body.data()), body.size()};
  }
};

// Either a response (any HTTP status) or a transport failure described in `error`.
struct HttpOutcome {
  bool ok = false;
  S3Error error;
  HttpResponse response;
};

struct HttpClientOptions {
  int max_connections = 16;
  double connect_timeout_s = 10;
  double low_speed_time_s = 30;  // fail when no byte moves for this long
  std::string ca_bundle;         // CURLOPT_CAINFO; "" = libcurl's default
  std::string ca_path;           // CURLOPT_CAPATH (a hashed certificate folder); "" = default
  std::string user_agent = "orchard";
  const std::atomic<bool>* cancel = nullptr;  // aborts transfers when set (see S3Options)
};

class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options);
  ~HttpClient();  // all Perform() calls must have returned
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  HttpOutcome Perform(const HttpRequest& request);

 private:
  void* Acquire();
  void Release(void* handle);

  HttpClientOptions options_;
  void* share_ = nullptr;       // CURLSH*
  std::mutex share_locks_[16];  // one per curl_lock_data
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<void*> idle_;  // CURL*
  int total_ = 0;
};

// ---- CA certificates ---------------------------------------------------------------------

// Where TLS peers are verified from: a bundle file (CURLOPT_CAINFO) and/or a hashed
// certificate folder (CURLOPT_CAPATH); empty means libcurl's built-in default.
struct CaCertificates {
  std::string file;
  std::string dir;
};

// The CA bundle files of the common Linux layouts, in the order they are tried: Debian and
// Ubuntu, Red Hat / Fedora / Amazon Linux (two), SUSE, then Alpine and the BSDs.
const std::vector<std::string>& SystemCaBundleFiles();

// The choice, as a pure function (`exists` says whether a path names an existing file or
// folder): `aws_ca_bundle` when set (kInvalidArgument when it does not exist: a bundle that
// was asked for is never silently replaced); else `ssl_cert_file` when set and existing;
// else `ssl_cert_dir` as the folder when set and existing; else the first existing file of
// `candidates`; else the default (both empty). OpenSSL's variables are honoured because
// libcurl itself does not read them.
Result<CaCertificates> ChooseCaCertificates(const std::string& aws_ca_bundle,
                                            const std::string& ssl_cert_file,
                                            const std::string& ssl_cert_dir,
                                            const std::vector<std::string>& candidates,
                                            const std::function<bool(const std::string&)>& exists);

// ChooseCaCertificates with `ca_bundle` (S3Options::ca_bundle), else $AWS_CA_BUNDLE, then
// $SSL_CERT_FILE, $SSL_CERT_DIR and SystemCaBundleFiles(), on the real file system.
Result<CaCertificates> CaCertificatesFromEnvironment(const std::string& ca_bundle);

}  // namespace orchard::s3internal
