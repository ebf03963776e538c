#include "storage/s3_xml.h"

#include <charconv>
#include <cstring>
#include <pugixml.hpp>

#include "storage/s3_internal.h"
#include "storage/sigv4.h"

namespace orchard::s3internal {
namespace {

// Bodies above this size are not error documents (S3's are well under 4 KiB).
constexpr size_t kMaxErrorBodyBytes = 1 << 20;

std::string_view LocalName(const char* name) {
  std::string_view n(name);
  const size_t colon = n.rfind(':');
  return colon == std::string_view::npos ? n : n.substr(colon + 1);
}

// The first child element named `name` (namespace prefix ignored), or an empty node.
pugi::xml_node Child(pugi::xml_node parent, std::string_view name) {
  for (pugi::xml_node c = parent.first_child(); c; c = c.next_sibling()) {
    if (c.type() == pugi::node_element && LocalName(c.name()) == name) return c;
  }
  return {};
}

// The concatenated text and CDATA directly inside `node` (entities already decoded).
std::string Text(pugi::xml_node node) {
  std::string out;
  for (pugi::xml_node c = node.first_child(); c; c = c.next_sibling()) {
    if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) out.append(c.value());
  }
  return out;
}

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

// `text` cut to `max` bytes with only printable ASCII, for messages.
std::string Printable(std::string_view text, size_t max) {
  std::string out;
  for (char c : text.substr(0, max)) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7F ? c : '?');
  }
  if (text.size() > max) out.append("...");
  return out;
}

// XML 1.0 cannot carry U+0000, and pugixml's NUL-terminated strings would silently cut a
// value at "&#0;": such a document is refused instead.
bool HasNulReference(std::string_view xml) {
  for (size_t at = xml.find("&#"); at != std::string_view::npos; at = xml.find("&#", at + 2)) {
    size_t i = at + 2;
    if (i < xml.size() && (xml[i] == 'x' || xml[i] == 'X')) ++i;
    const size_t digits = i;
    while (i < xml.size() && xml[i] == '0') ++i;
    if (i > digits && i < xml.size() && xml[i] == ';') return true;
  }
  return false;
}

// Parses `xml` into `doc` and returns its single root element. `expected` ("<Error>")
// names the document wanted, for messages.
Result<pugi::xml_node> LoadRoot(pugi::xml_document& doc, std::string_view xml,
                                const std::string& expected) {
  if (xml.find('\0') != std::string_view::npos || HasNulReference(xml)) {
    return Status::CorruptData("the response is not a " + expected +
                               " document (it contains a NUL character)");
  }
  const pugi::xml_parse_result parsed =
      doc.load_buffer(xml.data(), xml.size(), pugi::parse_default | pugi::parse_ws_pcdata_single,
                      pugi::encoding_utf8);
  if (!parsed) {
    return Status::CorruptData("the response is not a " + expected +
                               " document (malformed XML: " + parsed.description() + " at byte " +
                               std::to_string(parsed.offset) + ")");
  }
  pugi::xml_node element;
  int elements = 0;
  for (pugi::xml_node c = doc.first_child(); c; c = c.next_sibling()) {
    if (c.type() != pugi::node_element) continue;
    if (++elements == 1) element = c;
  }
  if (elements != 1) {
    return Status::CorruptData("the response is not a " + expected + " document (" +
                               std::to_string(elements) + " root elements)");
  }
  return element;
}

// LoadRoot, and the root must be named `root`.
Result<pugi::xml_node> Load(pugi::xml_document& doc, std::string_view xml, std::string_view root) {
  std::string expected;
  expected.append("<").append(root).append(">");
  ORCHARD_ASSIGN_OR_RETURN(const pugi::xml_node element, LoadRoot(doc, xml, expected));
  if (LocalName(element.name()) != root) {
    std::string message = "the response is not a " + expected + " document (its root is <";
    message.append(Printable(element.name(), 40)).append(">)");
    return Status::CorruptData(message);
  }
  return element;
}

// A plain non-negative decimal that fits 64 bits.
Result<uint64_t> ParseSize(std::string_view raw, const std::string& key) {
  const std::string_view text = TrimSpace(raw);
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (!text.empty() && ec == std::errc() && ptr == end) return value;
  std::string why = "is not a size in bytes";
  if (text.empty()) {
    why = "is empty";
  } else if (text.front() == '-') {
    why = "is negative";
  } else if (ec == std::errc::result_out_of_range) {
    why = "does not fit in 64 bits";
  }
  std::string message = "the entry for key '";
  message.append(Printable(key, 200))
      .append("' has a <Size> that ")
      .append(why)
      .append(" ('")
      .append(Printable(text, 40))
      .append("')");
  return Status::CorruptData(message);
}

struct StringWriter : pugi::xml_writer {
  std::string out;
  void write(const void* data, size_t size) override {
    out.append(static_cast<const char*>(data), size);
  }
};

bool IsTokenChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/' || c == '=';
}

}  // namespace

Result<ListPage> ParseListObjectsV2(std::string_view xml) {
  pugi::xml_document doc;
  ORCHARD_ASSIGN_OR_RETURN(const pugi::xml_node root, Load(doc, xml, "ListBucketResult"));
  // With encoding-type=url, keys come percent-encoded (spaces as '+'), which also keeps
  // characters XML 1.0 cannot carry. A store that ignores the request sends plain XML
  // text, which is only entity-decoded.
  const bool url_encoded = TrimSpace(Text(Child(root, "EncodingType"))) == "url";
  ListPage page;
  for (pugi::xml_node c = root.first_child(); c; c = c.next_sibling()) {
    if (c.type() != pugi::node_element || LocalName(c.name()) != "Contents") continue;
    const pugi::xml_node key = Child(c, "Key");
    if (!key) return Status::CorruptData("an entry without <Key>");
    ObjectInfo info;
    info.key = Text(key);
    if (url_encoded) info.key = sigv4::UriDecode(info.key, /*plus_as_space=*/true);
    const pugi::xml_node size = Child(c, "Size");
    if (!size) {
      return Status::CorruptData("the entry for key '" + Printable(info.key, 200) +
                                 "' has no <Size>");
    }
    ORCHARD_ASSIGN_OR_RETURN(info.size, ParseSize(Text(size), info.key));
    info.etag = Text(Child(c, "ETag"));
    if (info.etag.size() >= 2 && info.etag.front() == '"' && info.etag.back() == '"') {
      info.etag = info.etag.substr(1, info.etag.size() - 2);
    }
    page.objects.push_back(std::move(info));
  }
  const pugi::xml_node truncated = Child(root, "IsTruncated");
  if (truncated) {
    // The text is kept in a named string: a view of the temporary Text() returns would
    // dangle once the statement ends (a use after scope the fuzzer found).
    const std::string text = Text(truncated);
    const std::string_view value = TrimSpace(text);
    if (value == "true") {
      page.is_truncated = true;
    } else if (value != "false") {
      return Status::CorruptData("<IsTruncated> is '" + Printable(value, 40) +
                                 "', neither true nor false");
    }
  }
  if (page.is_truncated) {
    page.next_continuation_token = Text(Child(root, "NextContinuationToken"));
    if (page.next_continuation_token.empty()) {
      return Status::CorruptData("a truncated page without a <NextContinuationToken>");
    }
  }
  return page;
}

Result<std::string> ParseInitiateMultipartUploadResult(std::string_view xml) {
  pugi::xml_document doc;
  ORCHARD_ASSIGN_OR_RETURN(const pugi::xml_node root,
                           Load(doc, xml, "InitiateMultipartUploadResult"));
  std::string id = Text(Child(root, "UploadId"));
  if (id.empty()) return Status::CorruptData("no <UploadId> in the response");
  return id;
}

Result<std::vector<std::string>> ParseListMultipartUploadsResult(std::string_view xml) {
  pugi::xml_document doc;
  ORCHARD_ASSIGN_OR_RETURN(const pugi::xml_node root, Load(doc, xml, "ListMultipartUploadsResult"));
  std::vector<std::string> ids;
  for (pugi::xml_node c = root.first_child(); c; c = c.next_sibling()) {
    if (c.type() != pugi::node_element || LocalName(c.name()) != "Upload") continue;
    std::string id = Text(Child(c, "UploadId"));
    if (id.empty()) return Status::CorruptData("an <Upload> without <UploadId>");
    ids.push_back(std::move(id));
  }
  return ids;
}

bool ParseS3ErrorBody(std::string_view body, S3Error* error) {
  if (body.size() > kMaxErrorBodyBytes || body.find('<') == std::string_view::npos) return false;
  pugi::xml_document doc;
  const Result<pugi::xml_node> root = LoadRoot(doc, body, "<Error>");
  if (!root.ok()) return false;
  pugi::xml_node fields;
  pugi::xml_node request_id;
  const std::string_view name = LocalName(root->name());
  if (name == "Error") {
    fields = *root;
    request_id = Child(fields, "RequestId");
  } else if (name == "ErrorResponse" || name == "Response") {
    // STS and the other query APIs: <ErrorResponse><Error>, or with an <Errors> list as
    // moto and EC2-style services send.
    fields = Child(*root, "Error");
    if (!fields) fields = Child(Child(*root, "Errors"), "Error");
    if (!fields) return false;
    request_id = Child(fields, "RequestId");
    if (!request_id) request_id = Child(*root, "RequestId");
    if (!request_id) request_id = Child(*root, "RequestID");
  } else {
    return false;
  }
  error->code = Printable(TrimSpace(Text(Child(fields, "Code"))), 100);
  error->message = Printable(TrimSpace(Text(Child(fields, "Message"))), 400);
  error->request_id = Printable(TrimSpace(Text(request_id)), 100);
  return true;
}

std::string CompleteMultipartUploadBody(const std::vector<std::string>& etags) {
  pugi::xml_document doc;
  pugi::xml_node root = doc.append_child("CompleteMultipartUpload");
  root.append_attribute("xmlns") = "http://s3.amazonaws.com/doc/2006-03-01/";
  for (size_t i = 0; i < etags.size(); ++i) {
    pugi::xml_node part = root.append_child("Part");
    part.append_child("PartNumber").text().set(std::to_string(i + 1).c_str());
    part.append_child("ETag").text().set(etags[i].c_str());
  }
  StringWriter writer;
  doc.save(writer, "", pugi::format_raw | pugi::format_no_declaration, pugi::encoding_utf8);
  return std::move(writer.out);
}

Result<AwsCredentials> ParseAssumeRoleResponse(std::string_view xml) {
  pugi::xml_document doc;
  ORCHARD_ASSIGN_OR_RETURN(const pugi::xml_node root, Load(doc, xml, "AssumeRoleResponse"));
  const pugi::xml_node credentials = Child(Child(root, "AssumeRoleResult"), "Credentials");
  if (!credentials) {
    return Status::CorruptData("the AssumeRole response has no <AssumeRoleResult><Credentials>");
  }
  AwsCredentials c;
  auto field = [&](const char* name, std::string* out) -> Status {
    *out = std::string(TrimSpace(Text(Child(credentials, name))));
    if (out->empty()) {
      return Status::CorruptData(std::string("the AssumeRole response has no <") + name + ">");
    }
    return Status::OK();
  };
  ORCHARD_RETURN_NOT_OK(field("AccessKeyId", &c.access_key_id));
  ORCHARD_RETURN_NOT_OK(field("SecretAccessKey", &c.secret_access_key));
  ORCHARD_RETURN_NOT_OK(field("SessionToken", &c.session_token));
  std::string expiration;
  ORCHARD_RETURN_NOT_OK(field("Expiration", &expiration));
  c.expiration = ParseIso8601(expiration);
  if (!c.expiration.has_value()) {
    return Status::CorruptData("the AssumeRole response has an unreadable <Expiration> '" +
                               Printable(expiration, 40) + "'");
  }
  return c;
}

std::string BodyExcerpt(std::string_view body, size_t max_chars) {
  // Visible text only: tags (and anything up to their '>') are dropped, whitespace runs
  // become one space. Collect a little more than needed so that a token cut at the end of
  // the collected text is recognised as one.
  const size_t want = max_chars + 64;
  std::string text;
  size_t i = 0;
  for (; i < body.size() && text.size() < want; ++i) {
    const char c = body[i];
    if (c == '<') {
      const size_t close = body.find('>', i);
      if (close == std::string_view::npos) break;
      i = close;
      if (!text.empty() && text.back() != ' ') text.push_back(' ');
      continue;
    }
    const auto u = static_cast<unsigned char>(c);
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      if (!text.empty() && text.back() != ' ') text.push_back(' ');
    } else {
      text.push_back(u >= 0x20 && u < 0x7F ? c : '?');
    }
  }
  const bool more = i < body.size();
  while (!text.empty() && text.back() == ' ') text.pop_back();

  // Redact key- or token-like runs; a run that reaches the end of a cut text is redacted
  // whatever its length, since its rest is unknown.
  std::string out;
  for (size_t at = 0; at < text.size();) {
    if (!IsTokenChar(text[at])) {
      out.push_back(text[at++]);
      continue;
    }
    size_t end = at;
    while (end < text.size() && IsTokenChar(text[end])) ++end;
    const bool at_cut = more && end == text.size();
    if (end - at >= 32 || (at_cut && end - at >= 8)) {
      out.append("[redacted]");
    } else {
      out.append(text, at, end - at);
    }
    at = end;
  }
  if (out.size() > max_chars) {
    out.resize(max_chars);
    out.append("...");
  } else if (more) {
    out.append("...");
  }
  return out;
}

}  // namespace orchard::s3internal
