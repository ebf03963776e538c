// The signer against every case of the aws-c-auth SigV4 suite (header and query signing),
// plus S3-specific keys checked against the AWS documentation's S3 example.
#include "storage/sigv4.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "test_util.h"

namespace orchard::sigv4 {
namespace {

namespace fs = std::filesystem;

std::filesystem::path SuiteDir() {
  return orchard::testing::SharedDir() / "data" / "aws-sigv4-test-suite";
}

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Expected files sometimes end with a newline; canonical requests and strings to sign
// never do.
std::string ReadExpected(const fs::path& path) {
  std::string s = ReadText(path);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

struct ParsedRequest {
  Request request;
  std::string body;
};

// Parses request.txt: "METHOD PATH HTTP/1.1", headers (folded continuation lines are
// joined with a space), a blank line, then the body.
ParsedRequest ParseRequestFile(const std::string& text) {
  ParsedRequest out;
  std::vector<std::string> lines;
  size_t pos = 0;
  size_t body_start = text.size();
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!lines.empty() && line.empty()) {
      body_start = std::min(pos, text.size());
      break;
    }
    lines.push_back(line);
  }
  out.body = text.substr(body_start);
  const std::string& first = lines.at(0);
  const size_t sp1 = first.find(' ');
  const size_t sp2 = first.rfind(' ');
  out.request.method = first.substr(0, sp1);
  std::string target = first.substr(sp1 + 1, sp2 - sp1 - 1);
  const size_t q = target.find('?');
  out.request.path = target.substr(0, q);
  if (q != std::string::npos) {
    const std::string query = target.substr(q + 1);
    size_t start = 0;
    while (start <= query.size()) {
      size_t amp = query.find('&', start);
      if (amp == std::string::npos) amp = query.size();
      const std::string item = query.substr(start, amp - start);
      if (!item.empty()) {
        const size_t eq = item.find('=');
        const std::string name = item.substr(0, eq);
        const std::string value = eq == std::string::npos ? "" : item.substr(eq + 1);
        out.request.query.emplace_back(UriDecode(name, false), UriDecode(value, false));
      }
      start = amp + 1;
    }
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      out.request.headers.back().second += " " + line;
      continue;
    }
    const size_t colon = line.find(':');
    out.request.headers.emplace_back(line.substr(0, colon), line.substr(colon + 1));
  }
  return out;
}

int64_t ParseTimestamp(const std::string& iso) {
  std::tm tm{};
  std::istringstream ss(iso);
  ss >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%SZ");
  return static_cast<int64_t>(timegm(&tm));
}

std::vector<std::string> SuiteCases() {
  std::vector<std::string> cases;
  std::error_code ec;
  if (!fs::exists(SuiteDir(), ec)) return cases;
  for (auto it = fs::recursive_directory_iterator(SuiteDir(), ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->path().filename() == "context.json") {
      cases.push_back(fs::relative(it->path().parent_path(), SuiteDir()).generic_string());
    }
  }
  std::sort(cases.begin(), cases.end());
  return cases;
}

TEST(SigV4SuiteTest, AllCasesFound) {
  // The README promises 38 cases; a lost folder must not silently shrink the suite.
  EXPECT_EQ(SuiteCases().size(), 38u) << "in " << SuiteDir();
}

class SigV4SuiteCase : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = SuiteDir() / GetParam();
    const auto context = nlohmann::json::parse(ReadText(dir_ / "context.json"));
    credentials_.access_key_id = context["credentials"]["access_key_id"];
    credentials_.secret_access_key = context["credentials"]["secret_access_key"];
    if (context["credentials"].contains("token")) {
      credentials_.session_token = context["credentials"]["token"];
    }
    params_.region = context["region"];
    params_.service = context["service"];
    params_.unix_time = ParseTimestamp(context["timestamp"]);
    params_.normalize_path = context["normalize"];
    params_.double_encode_path = true;  // the suite's service is not S3
    params_.add_content_sha256_header = context["sign_body"];
    params_.sign_session_token = !context.value("omit_session_token", false);
    expires_ = context["expiration_in_seconds"];
    parsed_ = ParseRequestFile(ReadText(dir_ / "request.txt"));
    parsed_.request.payload_hash = Sha256Hex(parsed_.body);
  }

  fs::path dir_;
  AwsCredentials credentials_;
  SigningParams params_;
  int64_t expires_ = 0;
  ParsedRequest parsed_;
};

TEST_P(SigV4SuiteCase, HeaderSigning) {
  const Signature sig = SignHeaders(parsed_.request, credentials_, params_);
  EXPECT_EQ(sig.canonical_request, ReadExpected(dir_ / "header-canonical-request.txt"));
  EXPECT_EQ(sig.string_to_sign, ReadExpected(dir_ / "header-string-to-sign.txt"));
  EXPECT_EQ(sig.signature, ReadExpected(dir_ / "header-signature.txt"));
  // The signed request must carry exactly our Authorization header and, with a session
  // token, the X-Amz-Security-Token header.
  const std::string signed_request = ReadText(dir_ / "header-signed-request.txt");
  EXPECT_NE(signed_request.find("\nAuthorization:" + sig.authorization + "\n"), std::string::npos)
      << sig.authorization;
  for (const auto& [name, value] : sig.headers) {
    EXPECT_NE(signed_request.find("\n" + name + ":" + value + "\n"), std::string::npos) << name;
  }
}

TEST_P(SigV4SuiteCase, QuerySigning) {
  const Signature sig = PresignQuery(parsed_.request, credentials_, params_, expires_);
  EXPECT_EQ(sig.canonical_request, ReadExpected(dir_ / "query-canonical-request.txt"));
  EXPECT_EQ(sig.string_to_sign, ReadExpected(dir_ / "query-string-to-sign.txt"));
  EXPECT_EQ(sig.signature, ReadExpected(dir_ / "query-signature.txt"));
  const std::string signed_request = ReadText(dir_ / "query-signed-request.txt");
  for (const auto& [name, value] : sig.query) {
    const std::string param = UriEncode(name, false) + "=" + UriEncode(value, false);
    EXPECT_NE(signed_request.find(param), std::string::npos) << param;
  }
}

std::string CaseName(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(AwsCAuth, SigV4SuiteCase, ::testing::ValuesIn(SuiteCases()), CaseName);

// ---- S3 -----------------------------------------------------------------------------------

// The S3 example of the AWS documentation ("Signature Calculations for the Authorization
// Header: Transferring Payload in a Single Chunk", GET Object): bucket examplebucket,
// 2013-05-24T00:00:00Z, key AKIAIOSFODNN7EXAMPLE.
AwsCredentials DocCredentials() {
  AwsCredentials c;
  c.access_key_id = "AKIAIOSFODNN7EXAMPLE";
  c.secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  return c;
}

SigningParams DocParams() {
  SigningParams p;
  p.region = "us-east-1";
  p.service = "s3";
  p.unix_time = 1369353600;  // 20130524T000000Z
  return p;
}

Request S3Get(const std::string& key) {
  Request r;
  r.method = "GET";
  r.path = "/" + UriEncode(key, /*keep_slash=*/true);
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"}};
  return r;
}

TEST(SigV4S3Test, DocumentationExample) {
  Request r = S3Get("test.txt");
  r.headers.emplace_back("Range", "bytes=0-9");
  const Signature sig = SignHeaders(r, DocCredentials(), DocParams());
  EXPECT_EQ(sig.canonical_request,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
            "x-amz-content-sha256:"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sig.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(sig.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(sig.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
            "aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

// Keys S3 users really have. The canonical URI is the key encoded once, '/' kept, with
// "//", "." and ".." left alone (S3 does not normalize). The expected signatures were
// derived from the documentation example above (same credentials, date and headers, only
// the path changed) and cross-checked with botocore's S3SigV4Auth.
struct S3KeyCase {
  std::string key;
  std::string canonical_uri;
  std::string signature;
};

TEST(SigV4S3Test, KeysAreEncodedOnceAndNotNormalized) {
  const std::vector<S3KeyCase> cases = {
      {"photos/my cat.jpg", "/photos/my%20cat.jpg",
       "dce78990d5f12e21080da9e1bb9c35b5cd7b3ed9ef01767a604c13053e751961"},
      {"fruits/\xC3\x84pfel/\xC3\xBC.jpg", "/fruits/%C3%84pfel/%C3%BC.jpg",
       "aee1e91ae2fd9d509ee18f37445b57c21191f5b6a7e43eb70b775cb58db6f45b"},
      {"a+b=c.jpg", "/a%2Bb%3Dc.jpg",
       "e77f232e10d7ba54592cefeeba46c49b9d58ab9d4ede6abec6c107bee233cbd2"},
      {"100%/x.jpg", "/100%25/x.jpg",
       "4dd48fdd398031b78002cf73dfdf010b4d1a7bd0b935452af8a026246e0610ed"},
      {"tilde~/x.jpg", "/tilde~/x.jpg",
       "200cb35d3e47f6cd32acd139e17adc17f250b4801717f99f0ff7aad1eb4bb001"},
      {"a//b/./c/../d.jpg", "/a//b/./c/../d.jpg",
       "4d8742dfa7914f11977263032cfb2e8d130c33f849fc177e610e59b78ee2cbef"},
  };
  for (const S3KeyCase& c : cases) {
    const Signature sig = SignHeaders(S3Get(c.key), DocCredentials(), DocParams());
    EXPECT_EQ(sig.canonical_request,
              "GET\n" + c.canonical_uri +
                  "\n\nhost:examplebucket.s3.amazonaws.com\n"
                  "x-amz-content-sha256:"
                  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
                  "x-amz-date:20130524T000000Z\n\nhost;x-amz-content-sha256;x-amz-date\n"
                  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        << c.key;
    EXPECT_EQ(sig.signature, c.signature) << c.key;
  }
}

TEST(SigV4S3Test, ListObjectsQueryIsSortedAndEncoded) {
  Request r;
  r.method = "GET";
  r.path = "/";
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"}};
  r.query = {{"list-type", "2"},
             {"prefix", "photos/my cat+\xC3\xBC"},
             {"encoding-type", "url"},
             {"continuation-token", "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="},
             {"max-keys", "1000"}};
  const Signature sig = SignHeaders(r, DocCredentials(), DocParams());
  EXPECT_EQ(CanonicalQueryString(r.query),
            "continuation-token=1ueGcxLPRx1Tr%2FXYExHnhbYLgveDs2J%2Fwm36Hy4vbOwM%3D&"
            "encoding-type=url&list-type=2&max-keys=1000&"
            "prefix=photos%2Fmy%20cat%2B%C3%BC");
  EXPECT_EQ(sig.signature, "7c9effd4c4fae2cd2e9f1c8e2e5996804d914195e90ff7fb5ce7419f44af315a");
}

TEST(SigV4S3Test, SessionTokenIsSigned) {
  AwsCredentials creds = DocCredentials();
  creds.session_token = "token/with+chars=";
  const Signature sig = SignHeaders(S3Get("test.txt"), creds, DocParams());
  EXPECT_NE(sig.canonical_request.find("\nx-amz-security-token:token/with+chars=\n"),
            std::string::npos);
  EXPECT_NE(sig.authorization.find("x-amz-date;x-amz-security-token,"), std::string::npos);
  bool found = false;
  for (const auto& [name, value] : sig.headers) {
    found |= name == "X-Amz-Security-Token" && value == creds.session_token;
  }
  EXPECT_TRUE(found);
}

TEST(SigV4S3Test, SigningNeverExposesTheSecret) {
  const AwsCredentials creds = DocCredentials();
  const Signature sig = SignHeaders(S3Get("test.txt"), creds, DocParams());
  for (const std::string& s :
       {sig.canonical_request, sig.string_to_sign, sig.authorization, creds.Redacted()}) {
    EXPECT_EQ(s.find(creds.secret_access_key), std::string::npos);
  }
}

TEST(SigV4Test, UriEncodeAndDecode) {
  EXPECT_EQ(UriEncode("a b/c~d+e%", true), "a%20b/c~d%2Be%25");
  EXPECT_EQ(UriEncode("a b/c", false), "a%20b%2Fc");
  EXPECT_EQ(UriDecode("a%20b+c%2B%zz%4", false), "a b+c+%zz%4");
  EXPECT_EQ(UriDecode("a%20b+c%2B", true), "a b c+");
  EXPECT_EQ(CanonicalUri("", false, false), "/");
  EXPECT_EQ(CanonicalUri("/a/./b/../c//", true, false), "/a/c/");
}

TEST(SigV4Test, HashesMatchKnownValues) {
  EXPECT_EQ(Sha256Hex(""), kEmptyPayloadSha256);
  // RFC 4231 test case 2.
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

}  // namespace
}  // namespace orchard::sigv4
