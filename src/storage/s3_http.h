// A small HTTP/1.1 client over libcurl for the S3 client and the credential providers,
// plus the bits of S3's XML that Orchard reads.
//
// HttpClient keeps a pool of curl easy handles. A handle keeps its connections open after
// a request, so a later request on the same handle reuses the TCP (and TLS) connection;
// DNS results and TLS sessions are shared between handles. Perform() is thread-safe: at
// most max_connections requests run at once, further callers wait for a free handle.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
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
  std::string ca_bundle;
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

// ---- XML ----------------------------------------------------------------------------------

// The text of the first <tag>...</tag> at or after *pos (a self-closing <tag/> is ""),
// raw (not unescaped). Advances *pos past it when given. S3 responses use no prefixes,
// CDATA or comments inside the elements Orchard reads.
std::optional<std::string_view> XmlElement(std::string_view xml, std::string_view tag,
                                           size_t* pos = nullptr);
// Decodes &amp; &lt; &gt; &quot; &apos; and numeric references (to UTF-8).
std::string XmlUnescape(std::string_view text);
std::string XmlEscape(std::string_view text);

// Fills code, message and request_id from an S3 <Error> document; leaves them alone when
// the body is not one. Returns true if it was.
bool ParseS3ErrorBody(std::string_view body, S3Error* error);

}  // namespace orchard::s3internal
