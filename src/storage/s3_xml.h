// The XML that the S3 client reads and writes (S3 and STS responses, the
// CompleteMultipartUpload request body), parsed with pugixml. Pure functions: no I/O, no
// global state, safe from any thread, and safe on any input (they are fuzzed): malformed
// XML, a wrong root element, a missing field or a value out of range is a Status, never a
// crash or a silently wrong value. Entities declared in a DOCTYPE are never expanded
// (pugixml does not expand them), so "billion laughs" documents stay small; nesting depth
// costs no stack.
//
// Element names are matched without their namespace prefix, so <s3:Key> reads as <Key>.
// Messages never quote field values that may be secrets (credentials from STS).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "orchard/s3.h"
#include "orchard/s3_credentials.h"
#include "orchard/status.h"
#include "orchard/storage.h"

namespace orchard::s3internal {

// One ListObjectsV2 page.
struct ListPage {
  std::vector<ObjectInfo> objects;  // in the order listed; key, size and etag set
  bool is_truncated = false;
  std::string next_continuation_token;  // non-empty when is_truncated
};

// A <ListBucketResult>. With <EncodingType>url</EncodingType>, keys are percent-decoded
// ('+' as space) after entity decoding; otherwise they are only entity-decoded. ETags lose
// their surrounding quotes. kCorruptData for malformed XML, another root, an entry without
// <Key> or <Size>, a size that is not a plain decimal number that fits 64 bits (negative,
// empty, "1e3", overflowing), an <IsTruncated> other than true/false, or a truncated page
// without a <NextContinuationToken>.
Result<ListPage> ParseListObjectsV2(std::string_view xml);

// The UploadId of an <InitiateMultipartUploadResult>; kCorruptData when missing or empty.
Result<std::string> ParseInitiateMultipartUploadResult(std::string_view xml);

// The UploadIds of the <Upload> entries of a <ListMultipartUploadsResult>.
Result<std::vector<std::string>> ParseListMultipartUploadsResult(std::string_view xml);

// Fills code, message and request_id from an S3 <Error> document, or from the
// <ErrorResponse><Error>...</Error><RequestId/></ErrorResponse> of STS and other query
// APIs (also with <Errors><Error>, and <Response> as the root), and returns true; leaves
// `error` alone and returns false when the body is none of these.
// Each field is cut to a few hundred characters.
bool ParseS3ErrorBody(std::string_view body, S3Error* error);

// The body of CompleteMultipartUpload: part i+1 has ETag etags[i] (escaped as XML needs).
std::string CompleteMultipartUploadBody(const std::vector<std::string>& etags);

// The Credentials of an STS <AssumeRoleResponse>: AccessKeyId, SecretAccessKey,
// SessionToken and Expiration (ISO 8601) are all required. `source` is left empty for the
// caller. kCorruptData otherwise (the message never contains the values).
Result<AwsCredentials> ParseAssumeRoleResponse(std::string_view xml);

// A short, printable excerpt of a response body that is not an S3 error document (an HTML
// page from a proxy, plain text), for error messages: markup is dropped, whitespace is
// collapsed, bytes outside printable ASCII become '?', runs of 32 or more characters that
// look like keys or tokens (letters, digits, '+', '/', '=') are replaced by "[redacted]",
// and the result is cut to about `max_chars` characters ("..." marks a cut).
std::string BodyExcerpt(std::string_view body, size_t max_chars = 200);

}  // namespace orchard::s3internal
