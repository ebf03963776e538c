#include "storage/s3_http.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

namespace orchard::s3internal {
namespace {

std::once_flag g_curl_init_once;
CURLcode g_curl_init_result = CURLE_OK;

void InitCurlOnce() {
  std::call_once(g_curl_init_once, [] { g_curl_init_result = curl_global_init(CURL_GLOBAL_ALL); });
}

void LockShare(CURL*, curl_lock_data data, curl_lock_access, void* user) {
  auto* locks = static_cast<std::mutex*>(user);
  locks[static_cast<int>(data) & 15].lock();
}

void UnlockShare(CURL*, curl_lock_data data, void* user) {
  auto* locks = static_cast<std::mutex*>(user);
  locks[static_cast<int>(data) & 15].unlock();
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

// State shared with the curl callbacks of one transfer. Callbacks never throw: curl is C.
struct Transfer {
  HttpResponse* response = nullptr;
  uint64_t max_bytes = 0;
  bool head = false;
  bool too_large = false;
  bool out_of_memory = false;
};

// Called by curl about once a second even when no byte moves: a non-zero return aborts the
// transfer (CURLE_ABORTED_BY_CALLBACK), which is how Ctrl-C reaches a stalled request.
int OnProgress(void* cancel, curl_off_t, curl_off_t, curl_off_t, curl_off_t) noexcept {
  return static_cast<const std::atomic<bool>*>(cancel)->load() ? 1 : 0;
}

size_t OnBody(char* data, size_t size, size_t nmemb, void* user) noexcept {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * nmemb;
  std::vector<uint8_t>& body = t->response->body;
  if (body.size() + n > t->max_bytes) {
    t->too_large = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  try {
    body.insert(body.end(), reinterpret_cast<uint8_t*>(data), reinterpret_cast<uint8_t*>(data) + n);
  } catch (const std::bad_alloc&) {
    t->out_of_memory = true;
    return 0;
  }
  return n;
}

size_t OnHeader(char* data, size_t size, size_t nmemb, void* user) noexcept {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * nmemb;
  try {
    const std::string_view line(data, n);
    if (line.rfind("HTTP/", 0) == 0) {
      // A new status line (after "100 Continue"): forget the previous headers.
      t->response->headers.clear();
      return n;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return n;
    std::string name = Lower(Trim(line.substr(0, colon)));
    std::string value(Trim(line.substr(colon + 1)));
    if (name == "content-length" && !t->head) {
      const uint64_t length = std::strtoull(value.c_str(), nullptr, 10);
      if (length > t->max_bytes) {
        t->too_large = true;
        return 0;
      }
      t->response->body.reserve(static_cast<size_t>(length));
    }
    t->response->headers.emplace_back(std::move(name), std::move(value));
  } catch (const std::bad_alloc&) {
    t->out_of_memory = true;
    return 0;
  }
  return n;
}

S3Error::Transport ClassifyCurlError(CURLcode rc) {
  using T = S3Error::Transport;
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return T::kDnsFailed;
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:  // usually a handshake cut short
      return T::kConnectFailed;
    case CURLE_OPERATION_TIMEDOUT:
      return T::kTimeout;
    case CURLE_PARTIAL_FILE:
      return T::kTruncated;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return T::kReset;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
      return T::kTls;
    default:
      return T::kOther;
  }
}

const char* TransportName(S3Error::Transport t) {
  using T = S3Error::Transport;
  switch (t) {
    case T::kNone:
      return "";
    case T::kConnectFailed:
      return "ConnectFailed";
    case T::kDnsFailed:
      return "DnsFailed";
    case T::kReset:
      return "ConnectionReset";
    case T::kTimeout:
      return "Timeout";
    case T::kTruncated:
      return "TruncatedBody";
    case T::kTooLarge:
      return "TooLarge";
    case T::kTls:
      return "TlsError";
    case T::kOther:
      return "TransportError";
  }
  return "TransportError";
}

}  // namespace

const std::string* HttpResponse::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

HttpClient::HttpClient(HttpClientOptions options) : options_(std::move(options)) {
  InitCurlOnce();
  options_.max_connections = std::max(1, options_.max_connections);
  CURLSH* share = curl_share_init();
  if (share != nullptr) {
    curl_share_setopt(share, CURLSHOPT_LOCKFUNC, LockShare);
    curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, UnlockShare);
    curl_share_setopt(share, CURLSHOPT_USERDATA, static_cast<void*>(share_locks_));
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }
  share_ = share;
}

HttpClient::~HttpClient() {
  for (void* h : idle_) curl_easy_cleanup(static_cast<CURL*>(h));
  if (share_ != nullptr) curl_share_cleanup(static_cast<CURLSH*>(share_));
}

void* HttpClient::Acquire() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !idle_.empty() || total_ < options_.max_connections; });
  if (!idle_.empty()) {
    void* h = idle_.back();
    idle_.pop_back();
    return h;
  }
  CURL* h = curl_easy_init();
  if (h != nullptr) ++total_;
  return h;
}

void HttpClient::Release(void* handle) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(handle);
  }
  cv_.notify_one();
}

HttpOutcome HttpClient::Perform(const HttpRequest& request) {
  HttpOutcome outcome;
  if (g_curl_init_result != CURLE_OK) {
    outcome.error.transport = S3Error::Transport::kOther;
    outcome.error.code = "TransportError";
    outcome.error.message = "curl_global_init failed";
    return outcome;
  }
  CURL* curl = static_cast<CURL*>(Acquire());
  if (curl == nullptr) {
    outcome.error.transport = S3Error::Transport::kOther;
    outcome.error.code = "TransportError";
    outcome.error.message = "curl_easy_init failed";
    return outcome;
  }
  // curl_easy_reset keeps the handle's open connections and caches.
  curl_easy_reset(curl);

  Transfer transfer;
  transfer.response = &outcome.response;
  transfer.max_bytes = request.max_response_bytes;
  transfer.head = request.method == "HEAD";
  char error_buffer[CURL_ERROR_SIZE] = {0};

  const double connect_timeout =
      request.connect_timeout_s >= 0 ? request.connect_timeout_s : options_.connect_timeout_s;
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  if (share_ != nullptr) curl_easy_setopt(curl, CURLOPT_SHARE, share_);
  curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
  // S3 keys may contain "." and ".." segments and "//": send the path exactly as signed.
  curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::max(1.0, connect_timeout * 1000)));
  if (request.total_timeout_s > 0) {
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(std::max(1.0, request.total_timeout_s * 1000)));
  }
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME,
                   static_cast<long>(std::max(1.0, options_.low_speed_time_s)));
  if (!options_.ca_bundle.empty()) {
    curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_bundle.c_str());
  }
  if (!options_.ca_path.empty()) curl_easy_setopt(curl, CURLOPT_CAPATH, options_.ca_path.c_str());
  if (request.no_proxy) curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
  if (options_.cancel != nullptr) {
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, OnProgress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA,
                     const_cast<void*>(static_cast<const void*>(options_.cancel)));
  }

  static const char kEmpty[] = "";
  const bool has_body = request.method == "PUT" || request.method == "POST";
  if (request.method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    if (has_body) {
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size()));
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS,
                       request.body.empty() ? kEmpty : request.body.data());
    }
  }

  curl_slist* headers = nullptr;
  bool has_content_type = false;
  for (const auto& [name, value] : request.headers) {
    has_content_type |= Lower(name) == "content-type";
    headers = curl_slist_append(headers, (name + ": " + value).c_str());
  }
  // No "Expect: 100-continue" round trip, and no form-urlencoded content type by default.
  headers = curl_slist_append(headers, "Expect:");
  if (has_body && !has_content_type) headers = curl_slist_append(headers, "Content-Type:");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);

  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  curl_slist_free_all(headers);
  Release(curl);

  outcome.response.status = static_cast<int>(status);
  if (rc == CURLE_OK) {
    // A body shorter than announced is a truncation even when curl let it pass.
    const std::string* length = outcome.response.Header("content-length");
    if (!transfer.head && length != nullptr &&
        std::strtoull(length->c_str(), nullptr, 10) != outcome.response.body.size()) {
      outcome.error.transport = S3Error::Transport::kTruncated;
      outcome.error.code = TransportName(outcome.error.transport);
      outcome.error.message =
          "received " + std::to_string(outcome.response.body.size()) + " of " + *length + " bytes";
      return outcome;
    }
    outcome.ok = true;
    return outcome;
  }
  S3Error& e = outcome.error;
  if (transfer.too_large) {
    e.transport = S3Error::Transport::kTooLarge;
    e.message = "response larger than " + std::to_string(request.max_response_bytes) + " bytes";
  } else if (transfer.out_of_memory) {
    e.transport = S3Error::Transport::kTooLarge;
    e.message = "out of memory while receiving the response";
  } else {
    e.transport = ClassifyCurlError(rc);
    e.message = curl_easy_strerror(rc);
    if (error_buffer[0] != '\0') e.message += std::string(": ") + error_buffer;
  }
  e.code = TransportName(e.transport);
  e.http_status = 0;
  return outcome;
}

// ---- CA certificates ---------------------------------------------------------------------

const std::vector<std::string>& SystemCaBundleFiles() {
  static const std::vector<std::string> files = {
      "/etc/ssl/certs/ca-certificates.crt",                 // Debian, Ubuntu, Arch, Gentoo
      "/etc/pki/tls/certs/ca-bundle.crt",                   // Red Hat, Fedora, Amazon Linux
      "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  // Red Hat 7+, Amazon Linux 2023
      "/etc/ssl/ca-bundle.pem",                             // openSUSE, SLES
      "/etc/ssl/cert.pem",                                  // Alpine, the BSDs, macOS
  };
  return files;
}

Result<CaCertificates> ChooseCaCertificates(const std::string& aws_ca_bundle,
                                            const std::string& ssl_cert_file,
                                            const std::string& ssl_cert_dir,
                                            const std::vector<std::string>& candidates,
                                            const std::function<bool(const std::string&)>& exists) {
  CaCertificates out;
  if (!aws_ca_bundle.empty()) {
    if (!exists(aws_ca_bundle)) {
      return Status::InvalidArgument("the CA bundle '" + aws_ca_bundle +
                                     "' (AWS_CA_BUNDLE) does not exist");
    }
    out.file = aws_ca_bundle;
    return out;
  }
  if (!ssl_cert_file.empty() && exists(ssl_cert_file)) {
    out.file = ssl_cert_file;
    return out;
  }
  if (!ssl_cert_dir.empty() && exists(ssl_cert_dir)) {
    out.dir = ssl_cert_dir;
    return out;
  }
  for (const std::string& candidate : candidates) {
    if (exists(candidate)) {
      out.file = candidate;
      return out;
    }
  }
  return out;
}

Result<CaCertificates> CaCertificatesFromEnvironment(const std::string& ca_bundle) {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr ? std::string(v) : std::string();
  };
  return ChooseCaCertificates(
      ca_bundle.empty() ? env("AWS_CA_BUNDLE") : ca_bundle, env("SSL_CERT_FILE"),
      env("SSL_CERT_DIR"), SystemCaBundleFiles(),
      [](const std::string& path) { return ::access(path.c_str(), F_OK) == 0; });
}

}  // namespace orchard::s3internal
