#include "storage/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <ctime>
#include <map>

namespace orchard::sigv4 {
namespace {

constexpr char kAlgorithm[] = "AWS4-HMAC-SHA256";

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Trims and collapses runs of whitespace into one space, as SigV4 canonical headers want.
std::string CanonicalHeaderValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  bool pending_space = false;
  for (char c : v) {
    if (IsSpace(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

std::string NormalizePath(std::string_view path) {
  std::vector<std::string_view> segments;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view seg = path.substr(start, end - start);
    if (seg == "..") {
      if (!segments.empty()) segments.pop_back();
    } else if (!seg.empty() && seg != ".") {
      segments.push_back(seg);
    }
    start = end + 1;
  }
  std::string out = "/";
  for (size_t i = 0; i < segments.size(); ++i) {
    if (i > 0) out.push_back('/');
    out.append(segments[i]);
  }
  // A trailing slash names a folder-like resource and is significant.
  if (!segments.empty() && !path.empty() && path.back() == '/') out.push_back('/');
  return out;
}

std::string CredentialScope(std::string_view date, const SigningParams& params) {
  std::string scope(date);
  scope.append("/").append(params.region).append("/").append(params.service);
  scope.append("/aws4_request");
  return scope;
}

std::string BuildCanonicalRequest(const Request& request, const SigningParams& params,
                                  const Pairs& query, const std::string& canonical_headers,
                                  const std::string& signed_headers) {
  std::string out = request.method;
  out.push_back('\n');
  out.append(CanonicalUri(request.path, params.normalize_path, params.double_encode_path));
  out.push_back('\n');
  out.append(CanonicalQueryString(query));
  out.push_back('\n');
  out.append(canonical_headers);
  out.push_back('\n');
  out.append(signed_headers);
  out.push_back('\n');
  out.append(request.payload_hash);
  return out;
}

void Finish(Signature& sig, const AwsCredentials& credentials, const SigningParams& params,
            const std::string& amz_date) {
  const std::string date = amz_date.substr(0, 8);
  sig.string_to_sign = std::string(kAlgorithm) + "\n" + amz_date + "\n" +
                       CredentialScope(date, params) + "\n" + Sha256Hex(sig.canonical_request);
  const std::string key =
      SigningKey(credentials.secret_access_key, date, params.region, params.service);
  sig.signature = HexEncode(HmacSha256(key, sig.string_to_sign));
}

}  // namespace

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest), length));
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest, &length);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

std::string UriEncode(std::string_view s, bool keep_slash) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kDigits[c >> 4]);
      out.push_back(kDigits[c & 15]);
    }
  }
  return out;
}

std::string UriDecode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      const int hi = HexValue(s[i + 1]);
      const int lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_as_space && c == '+' ? ' ' : c);
  }
  return out;
}

std::string AmzDate(int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string CanonicalUri(std::string_view path, bool normalize, bool double_encode) {
  std::string p = normalize ? NormalizePath(path) : std::string(path);
  if (p.empty()) p = "/";
  return double_encode ? UriEncode(p, /*keep_slash=*/true) : p;
}

std::string CanonicalQueryString(const Pairs& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query) {
    encoded.emplace_back(UriEncode(name, false), UriEncode(value, false));
  }
  // Sorted by encoded name, then by encoded value (byte order).
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out.push_back('&');
    out.append(name).append("=").append(value);
  }
  return out;
}

std::pair<std::string, std::string> CanonicalHeaders(const Pairs& headers) {
  // Values of repeated names are joined with ',' in the order they were given.
  std::map<std::string, std::string> merged;
  for (const auto& [name, value] : headers) {
    const std::string lower = ToLower(CanonicalHeaderValue(name));
    const std::string v = CanonicalHeaderValue(value);
    auto [it, inserted] = merged.emplace(lower, v);
    if (!inserted) it->second.append(",").append(v);
  }
  std::string block;
  std::string names;
  for (const auto& [name, value] : merged) {
    block.append(name).append(":").append(value).append("\n");
    if (!names.empty()) names.push_back(';');
    names.append(name);
  }
  return {block, names};
}

std::string SigningKey(std::string_view secret, std::string_view date, std::string_view region,
                       std::string_view service) {
  std::string key = HmacSha256("AWS4" + std::string(secret), date);
  key = HmacSha256(key, region);
  key = HmacSha256(key, service);
  return HmacSha256(key, "aws4_request");
}

Signature SignHeaders(const Request& request, const AwsCredentials& credentials,
                      const SigningParams& params) {
  Signature sig;
  const std::string amz_date = AmzDate(params.unix_time);
  sig.headers.emplace_back("X-Amz-Date", amz_date);
  if (params.add_content_sha256_header) {
    sig.headers.emplace_back("x-amz-content-sha256", request.payload_hash);
  }
  const bool has_token = !credentials.session_token.empty();
  if (has_token && params.sign_session_token) {
    sig.headers.emplace_back("X-Amz-Security-Token", credentials.session_token);
  }
  Pairs all = request.headers;
  all.insert(all.end(), sig.headers.begin(), sig.headers.end());
  const auto [block, signed_headers] = CanonicalHeaders(all);
  sig.canonical_request =
      BuildCanonicalRequest(request, params, request.query, block, signed_headers);
  Finish(sig, credentials, params, amz_date);
  sig.authorization = std::string(kAlgorithm) + " Credential=" + credentials.access_key_id + "/" +
                      CredentialScope(amz_date.substr(0, 8), params) +
                      ", SignedHeaders=" + signed_headers + ", Signature=" + sig.signature;
  if (has_token && !params.sign_session_token) {
    sig.headers.emplace_back("X-Amz-Security-Token", credentials.session_token);
  }
  sig.headers.emplace_back("Authorization", sig.authorization);
  return sig;
}

Signature PresignQuery(const Request& request, const AwsCredentials& credentials,
                       const SigningParams& params, int64_t expires_seconds) {
  Signature sig;
  const std::string amz_date = AmzDate(params.unix_time);
  const auto [block, signed_headers] = CanonicalHeaders(request.headers);
  sig.query.emplace_back("X-Amz-Algorithm", kAlgorithm);
  sig.query.emplace_back("X-Amz-Credential", credentials.access_key_id + "/" +
                                                 CredentialScope(amz_date.substr(0, 8), params));
  sig.query.emplace_back("X-Amz-Date", amz_date);
  sig.query.emplace_back("X-Amz-SignedHeaders", signed_headers);
  sig.query.emplace_back("X-Amz-Expires", std::to_string(expires_seconds));
  const bool has_token = !credentials.session_token.empty();
  if (has_token && params.sign_session_token) {
    sig.query.emplace_back("X-Amz-Security-Token", credentials.session_token);
  }
  Pairs all = request.query;
  all.insert(all.end(), sig.query.begin(), sig.query.end());
  sig.canonical_request = BuildCanonicalRequest(request, params, all, block, signed_headers);
  Finish(sig, credentials, params, amz_date);
  if (has_token && !params.sign_session_token) {
    sig.query.emplace_back("X-Amz-Security-Token", credentials.session_token);
  }
  sig.query.emplace_back("X-Amz-Signature", sig.signature);
  return sig;
}

}  // namespace orchard::sigv4
