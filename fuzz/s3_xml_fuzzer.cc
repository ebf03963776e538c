// The XML the S3 client reads (src/storage/s3_xml.h): ListObjectsV2 pages, multipart upload
// answers, S3 and STS error documents, STS AssumeRole credentials, and the excerpt of a body
// that is no error document; and the CompleteMultipartUpload body it writes.
// Every parser runs on every input. Invariants are the header's contracts: a truncated page
// has a continuation token, an upload id is never empty, error fields are short printable
// ASCII and untouched when the body is no error document, credentials are complete and a
// refusal never quotes the secret key, an excerpt holds no key-like run, and the body
// written for any ETags reads back as those ETags.

#include <cstddef>
#include <cstdint>
#include <pugixml.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.h"
#include "storage/s3_xml.h"

using namespace orchard;
using namespace orchard::s3internal;

namespace {

bool PrintableAscii(std::string_view s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) return false;
  }
  return true;
}

bool IsTokenChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/' || c == '=';
}

size_t LongestTokenRun(std::string_view s) {
  size_t longest = 0, run = 0;
  for (const char c : s) {
    run = IsTokenChar(c) ? run + 1 : 0;
    if (run > longest) longest = run;
  }
  return longest;
}

bool HasSurroundingSpace(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  return !s.empty() && (space(s.front()) || space(s.back()));
}

// The text of the first <SecretAccessKey> element when it is literal (no markup, no
// entity), key-like (20 or more token characters, as AWS secrets are) and found nowhere
// else in the document: a message that contains it can only have copied the secret.
std::string UniqueLiteralSecret(std::string_view xml) {
  const std::string_view open = "<SecretAccessKey>", close = "</SecretAccessKey>";
  const size_t begin = xml.find(open);
  if (begin == std::string_view::npos) return "";
  const size_t from = begin + open.size();
  const size_t end = xml.find(close, from);
  if (end == std::string_view::npos) return "";
  const std::string_view secret = xml.substr(from, end - from);
  if (secret.size() < 20) return "";
  for (const char c : secret) {
    if (!IsTokenChar(c)) return "";
  }
  if (xml.find(secret, end) != std::string_view::npos || xml.find(secret) != from) return "";
  return std::string(secret);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view xml = fuzz::AsText(data, size);

  if (const auto page = ParseListObjectsV2(xml); page.ok()) {
    FUZZ_CHECK(!page->is_truncated || !page->next_continuation_token.empty());
    FUZZ_CHECK(page->is_truncated || page->next_continuation_token.empty());
  } else {
    FUZZ_CHECK(page.status().code() == StatusCode::kCorruptData);
  }

  if (const auto id = ParseInitiateMultipartUploadResult(xml); id.ok()) {
    FUZZ_CHECK(!id->empty());
  } else {
    FUZZ_CHECK(id.status().code() == StatusCode::kCorruptData);
  }

  if (const auto ids = ParseListMultipartUploadsResult(xml); ids.ok()) {
    for (const std::string& id : *ids) FUZZ_CHECK(!id.empty());
  } else {
    FUZZ_CHECK(ids.status().code() == StatusCode::kCorruptData);
  }

  S3Error error;
  error.http_status = 503;
  error.code = "sentinel-code";
  error.message = "sentinel-message";
  error.request_id = "sentinel-id";
  if (ParseS3ErrorBody(xml, &error)) {
    FUZZ_CHECK(error.code.size() <= 103 && PrintableAscii(error.code));
    FUZZ_CHECK(error.message.size() <= 403 && PrintableAscii(error.message));
    FUZZ_CHECK(error.request_id.size() <= 103 && PrintableAscii(error.request_id));
  } else {
    FUZZ_CHECK(error.code == "sentinel-code" && error.message == "sentinel-message" &&
               error.request_id == "sentinel-id");
  }
  FUZZ_CHECK(error.http_status == 503);

  if (const auto credentials = ParseAssumeRoleResponse(xml); credentials.ok()) {
    for (const std::string* field : {&credentials->access_key_id, &credentials->secret_access_key,
                                     &credentials->session_token}) {
      FUZZ_CHECK(!field->empty() && !HasSurroundingSpace(*field));
    }
    FUZZ_CHECK(credentials->expiration.has_value());
    // No expiration before 1970: `expiration - now` (RefreshingProvider) must not overflow.
    FUZZ_CHECK(credentials->expiration->time_since_epoch().count() >= 0);
    FUZZ_CHECK(credentials->source.empty());
  } else {
    FUZZ_CHECK(credentials.status().code() == StatusCode::kCorruptData);
    const std::string secret = UniqueLiteralSecret(xml);
    FUZZ_CHECK(secret.empty() || credentials.status().message().find(secret) == std::string::npos);
  }

  // The excerpt: printable, about max_chars long, with every key-like run redacted.
  const size_t max_chars = size > 0 ? data[0] : 200;
  const std::string excerpt = BodyExcerpt(xml, max_chars);
  FUZZ_CHECK(PrintableAscii(excerpt));
  FUZZ_CHECK(excerpt.size() <= max_chars + 3);
  FUZZ_CHECK(LongestTokenRun(excerpt) < 32);

  // The CompleteMultipartUpload body for ETags cut from the input (lines of visible ASCII,
  // as S3 returns them) reads back as the same ETags, in order.
  std::vector<std::string> etags;
  for (size_t at = 0; at < size && etags.size() < 16;) {
    size_t end = xml.find('\n', at);
    if (end == std::string_view::npos) end = size;
    std::string etag(xml.substr(at, end - at));
    bool visible = !etag.empty();
    for (const char c : etag) visible &= c > 0x20 && c < 0x7f;
    if (visible) etags.push_back(std::move(etag));
    at = end + 1;
  }
  const std::string body = CompleteMultipartUploadBody(etags);
  pugi::xml_document doc;
  FUZZ_CHECK(doc.load_buffer(body.data(), body.size()));
  const pugi::xml_node root = doc.child("CompleteMultipartUpload");
  FUZZ_CHECK(root);
  size_t n = 0;
  for (pugi::xml_node part = root.child("Part"); part; part = part.next_sibling("Part"), ++n) {
    FUZZ_CHECK(n < etags.size());
    FUZZ_CHECK(part.child("PartNumber").text().as_ullong() == n + 1);
    FUZZ_CHECK(etags[n] == part.child("ETag").text().get());
  }
  FUZZ_CHECK(n == etags.size());
  return 0;
}
