// AWS Signature Version 4, header-based and query-string (presigned) signing.
//
// Reference: "Signing AWS API requests" (AWS General Reference) and the aws-c-auth test
// suite in shared/data/aws-sigv4-test-suite, which sigv4_test.cc runs in full.
//
// Paths: S3 signs the path exactly as sent (already percent-encoded once, with "//", "."
// and ".." kept); other services normalize the path and percent-encode it a second time.
// SigningParams selects which. All functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "orchard/s3_credentials.h"

namespace orchard::sigv4 {

using Pairs = std::vector<std::pair<std::string, std::string>>;

inline constexpr const char* kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
inline constexpr const char* kUnsignedPayload = "UNSIGNED-PAYLOAD";

std::string HexEncode(std::string_view bytes);
// Lower-case hex SHA-256.
std::string Sha256Hex(std::string_view data);
// Raw 32-byte HMAC-SHA256.
std::string HmacSha256(std::string_view key, std::string_view data);

// Percent-encodes every byte except the unreserved A-Z a-z 0-9 '-' '.' '_' '~' (and '/'
// when keep_slash), with upper-case hex: SigV4's UriEncode, also right for S3 keys on the
// wire.
std::string UriEncode(std::string_view s, bool keep_slash);
// Decodes %XX (invalid escapes are kept verbatim) and, when plus_as_space, '+' as ' '.
std::string UriDecode(std::string_view s, bool plus_as_space);

// "20150830T123600Z" for a Unix time in seconds.
std::string AmzDate(int64_t unix_seconds);

struct Request {
  std::string method;
  // The path as sent; see SigningParams::double_encode_path.
  std::string path;
  // Decoded names and values, any order; the signer encodes and sorts them.
  Pairs query;
  // Headers as sent, any case and order; repeated names allowed. Must include Host.
  Pairs headers;
  // Hex SHA-256 of the body, or kUnsignedPayload.
  std::string payload_hash = kEmptyPayloadSha256;
};

struct SigningParams {
  std::string region;
  std::string service = "s3";
  int64_t unix_time = 0;
  // Generic services: resolve "." and "..", drop empty segments. S3: false.
  bool normalize_path = false;
  // Generic services: the canonical URI is UriEncode(path as sent). S3: false, the path
  // as sent (which the client encoded once) is the canonical URI.
  bool double_encode_path = false;
  // Add and sign x-amz-content-sha256 (header signing only; S3 requires it).
  bool add_content_sha256_header = true;
  // With a session token: sign it (true) or add it after signing (some STS setups).
  bool sign_session_token = true;
};

struct Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;  // lower-case hex
  // Header signing: headers to add (X-Amz-Date, x-amz-content-sha256,
  // X-Amz-Security-Token, Authorization), in that order. Query signing: empty.
  Pairs headers;
  // Query signing: decoded parameters to add, X-Amz-Signature last. Header signing: empty.
  Pairs query;
  // Header signing: the Authorization value.
  std::string authorization;
};

// Signs with an Authorization header.
Signature SignHeaders(const Request& request, const AwsCredentials& credentials,
                      const SigningParams& params);
// Signs in the query string (a presigned URL valid for expires_seconds).
Signature PresignQuery(const Request& request, const AwsCredentials& credentials,
                       const SigningParams& params, int64_t expires_seconds);

// Pieces of the canonical request, exposed for tests.
std::string CanonicalUri(std::string_view path, bool normalize, bool double_encode);
std::string CanonicalQueryString(const Pairs& query);
// Canonical header block ("name:value\n" lines) and the signed-header list ("a;b;c").
std::pair<std::string, std::string> CanonicalHeaders(const Pairs& headers);
// The raw signing key: HMAC chain over date, region, service and "aws4_request".
std::string SigningKey(std::string_view secret, std::string_view date, std::string_view region,
                       std::string_view service);

}  // namespace orchard::sigv4
