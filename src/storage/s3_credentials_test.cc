// Credential sources and their order: environment, shared files with profiles, container
// endpoint, and the instance role through IMDSv2 (against a loopback fake that insists on
// the session token).
#include "orchard/s3_credentials.h"

#include <gtest/gtest.h>

#include <atomic>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>

#include "orchard/s3.h"
#include "storage/s3_internal.h"
#include "storage/s3_test_util.h"

namespace orchard {
namespace {

using testing::FakeHttpServer;
using testing::FakeRequest;
using testing::FakeResponse;
using testing::ScopedAwsEnv;

void WriteText(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

TEST(AwsCredentialsTest, RedactedHidesTheSecretAndMostOfTheKeyId) {
  AwsCredentials c;
  c.access_key_id = "AKIAIOSFODNN7EXAMPLE";
  c.secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  c.session_token = "FQoGZXIvYXdzEBYaDSECRETTOKEN";
  c.source = "environment";
  const std::string r = c.Redacted();
  EXPECT_EQ(r, "access key AKIA...MPLE from environment, with session token");
  EXPECT_EQ(r.find(c.secret_access_key), std::string::npos);
  EXPECT_EQ(r.find(c.session_token), std::string::npos);
  EXPECT_EQ(r.find(c.access_key_id), std::string::npos);
  c.access_key_id = "short";
  EXPECT_EQ(c.Redacted().find("short"), std::string::npos);
}

TEST(EnvironmentCredentialsTest, ReadsKeysAndToken) {
  ScopedAwsEnv env;
  auto provider = MakeEnvironmentCredentialsProvider();
  EXPECT_EQ(provider->Get().status().code(), StatusCode::kNotFound);
  env.Set("AWS_ACCESS_KEY_ID", "AKIDENVENVENV");
  EXPECT_EQ(provider->Get().status().code(), StatusCode::kInvalidArgument);
  env.Set("AWS_SECRET_ACCESS_KEY", "envsecret");
  env.Set("AWS_SESSION_TOKEN", "envtoken");
  auto c = provider->Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key_id, "AKIDENVENVENV");
  EXPECT_EQ(c->secret_access_key, "envsecret");
  EXPECT_EQ(c->session_token, "envtoken");
  EXPECT_EQ(c->source, "environment");
  env.Unset("AWS_ACCESS_KEY_ID");
  const Status half = provider->Get().status();
  EXPECT_EQ(half.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(half.message().find("envsecret"), std::string::npos);
}

class ProfileCredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteText(env_.home() / ".aws" / "credentials",
              "# comment\n"
              "[default]\n"
              "aws_access_key_id = AKIDDEFAULTFILE\n"
              "aws_secret_access_key=defaultsecret\r\n"
              "\n"
              "[dev]\n"
              "  # indented comment\n"
              "aws_access_key_id=AKIDDEVFILE\n"
              "aws_secret_access_key = dev secret with spaces\n"
              "aws_session_token = devtoken\n"
              "[both]\n"
              "aws_access_key_id=AKIDBOTHCREDFILE\n"
              "aws_secret_access_key=fromcredentials\n");
    WriteText(env_.home() / ".aws" / "config",
              "[default]\n"
              "region = eu-west-1\n"
              "[profile cfgonly]\n"
              "aws_access_key_id = AKIDCONFIGONLY\n"
              "aws_secret_access_key = configsecret\n"
              "s3 =\n"
              "  addressing_style = path\n"
              "[profile both]\n"
              "aws_access_key_id=AKIDBOTHCONFIG\n"
              "aws_secret_access_key=fromconfig\n"
              "[profile role]\n"
              "role_arn = arn:aws:iam::123456789012:role/r\n"
              "source_profile = default\n"
              "[profile empty]\n"
              "region = us-west-2\n"
              "[cfgonly]\n"  // without "profile ": not this profile in the config file
              "aws_access_key_id = AKIDWRONGSECTION\n"
              "aws_secret_access_key = wrong\n");
  }
  ScopedAwsEnv env_;
};

TEST_F(ProfileCredentialsTest, DefaultProfile) {
  auto c = MakeProfileCredentialsProvider()->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "AKIDDEFAULTFILE");
  EXPECT_EQ(c->secret_access_key, "defaultsecret");  // "\r" stripped
  EXPECT_EQ(c->session_token, "");
  EXPECT_NE(c->source.find("profile default"), std::string::npos);
}

TEST_F(ProfileCredentialsTest, NamedProfileFromEnvironmentOrArgument) {
  env_.Set("AWS_PROFILE", "dev");
  auto c = MakeProfileCredentialsProvider()->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "AKIDDEVFILE");
  EXPECT_EQ(c->secret_access_key, "dev secret with spaces");
  EXPECT_EQ(c->session_token, "devtoken");
  auto d = MakeProfileCredentialsProvider("default")->Get();
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->access_key_id, "AKIDDEFAULTFILE");
}

TEST_F(ProfileCredentialsTest, ConfigFileUsesProfilePrefixAndCredentialsFileWins) {
  auto c = MakeProfileCredentialsProvider("cfgonly")->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "AKIDCONFIGONLY");
  auto b = MakeProfileCredentialsProvider("both")->Get();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->access_key_id, "AKIDBOTHCREDFILE");
  EXPECT_EQ(b->secret_access_key, "fromcredentials");
}

TEST_F(ProfileCredentialsTest, FileLocationsFromEnvironment) {
  WriteText(env_.home() / "elsewhere" / "creds",
            "[default]\naws_access_key_id=AKIDELSEWHERE\n"
            "aws_secret_access_key=x\n");
  env_.Set("AWS_SHARED_CREDENTIALS_FILE", (env_.home() / "elsewhere" / "creds").string());
  auto c = MakeProfileCredentialsProvider()->Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key_id, "AKIDELSEWHERE");
  env_.Set("AWS_CONFIG_FILE", (env_.home() / "nothing").string());
  EXPECT_EQ(MakeProfileCredentialsProvider("cfgonly")->Get().status().code(),
            StatusCode::kInvalidArgument);  // named, but in neither file
}

TEST_F(ProfileCredentialsTest, UnsupportedSourcesNameTheirKey) {
  WriteText(env_.home() / ".aws" / "config",
            "[profile process]\ncredential_process = /bin/creds\n"
            "[profile sso]\nsso_session = corp\nsso_account_id = 1\n"
            "[profile sso-legacy]\nsso_start_url = https://x.awsapps.com/start\n"
            "[profile web]\nrole_arn = arn:aws:iam::123456789012:role/w\n"
            "web_identity_token_file = /var/run/token\n"
            "[profile mfa]\nrole_arn = arn:aws:iam::123456789012:role/m\n"
            "source_profile = default\nmfa_serial = arn:aws:iam::123456789012:mfa/u\n");
  for (const auto& [profile, key] :
       std::vector<std::pair<std::string, std::string>>{{"process", "credential_process"},
                                                        {"sso", "sso_session"},
                                                        {"sso-legacy", "sso_start_url"},
                                                        {"web", "web_identity_token_file"},
                                                        {"mfa", "mfa_serial"}}) {
    const Status st = MakeProfileCredentialsProvider(profile)->Get().status();
    EXPECT_EQ(st.code(), StatusCode::kUnsupported) << profile << ": " << st.ToString();
    EXPECT_NE(st.message().find("profile '" + profile + "' in " +
                                (env_.home() / ".aws" / "config").string() + " uses " + key),
              std::string::npos)
        << st.message();
    EXPECT_NE(st.message().find("which Orchard does not support"), std::string::npos);
    EXPECT_NE(st.message().find("aws configure export-credentials --profile " + profile),
              std::string::npos);
  }
}

TEST_F(ProfileCredentialsTest, MissingProfiles) {
  EXPECT_EQ(MakeProfileCredentialsProvider("empty")->Get().status().code(), StatusCode::kNotFound);
  const Status missing = MakeProfileCredentialsProvider("nope")->Get().status();
  EXPECT_EQ(missing.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(missing.message().find("'nope'"), std::string::npos);
}

TEST_F(ProfileCredentialsTest, HalfAKeyIsAnError) {
  WriteText(env_.home() / ".aws" / "credentials", "[default]\naws_access_key_id=AKIDHALF\n");
  EXPECT_EQ(MakeProfileCredentialsProvider()->Get().status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ProfileCredentialsTest, ChainPrefersEnvironmentThenFiles) {
  env_.Set("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRON");
  env_.Set("AWS_SECRET_ACCESS_KEY", "envsecret");
  auto c = MakeDefaultCredentialsChain()->Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key_id, "AKIDFROMENVIRON");

  env_.Unset("AWS_ACCESS_KEY_ID");
  env_.Unset("AWS_SECRET_ACCESS_KEY");
  auto f = MakeDefaultCredentialsChain()->Get();
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->access_key_id, "AKIDDEFAULTFILE");

  // A half-set environment is reported, not silently replaced by the file's identity.
  env_.Set("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRON");
  EXPECT_EQ(MakeDefaultCredentialsChain()->Get().status().code(), StatusCode::kInvalidArgument);
}

TEST(DefaultChainTest, NothingFoundGivesTheClearMessage) {
  ScopedAwsEnv env;  // instance metadata disabled
  const Status st = MakeDefaultCredentialsChain()->Get().status();
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_NE(st.message().find("no AWS credentials found: set AWS_ACCESS_KEY_ID"), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("~/.aws/credentials"), std::string::npos);
  EXPECT_NE(st.message().find("instance with a role"), std::string::npos);
  EXPECT_NE(st.message().find("AWS_EC2_METADATA_DISABLED"), std::string::npos);
}

// ---- IMDSv2 ---------------------------------------------------------------------------------

std::string IsoTime(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The instance metadata service: tokens required unless `v1_only`.
struct FakeImds {
  std::atomic<int> credential_fetches{0};
  std::atomic<int> token_requests{0};
  std::atomic<bool> v1_only{false};
  std::atomic<bool> has_role{true};
  std::atomic<int> lifetime_s{3600};

  FakeResponse operator()(const FakeRequest& r) {
    const std::string token = "imds-token-123";
    if (r.Path() == "/latest/api/token") {
      if (v1_only) return Code(403);
      if (r.method != "PUT" || r.Header("x-aws-ec2-metadata-token-ttl-seconds").empty()) {
        return Code(400);
      }
      ++token_requests;
      return FakeResponse::Ok(token);
    }
    if (!v1_only && r.Header("x-aws-ec2-metadata-token") != token) return Code(401);
    if (r.method != "GET") return Code(405);
    if (r.Path() == "/latest/meta-data/iam/security-credentials/") {
      return has_role ? FakeResponse::Ok("orchard-role\n") : Code(404);
    }
    if (r.Path() == "/latest/meta-data/iam/security-credentials/orchard-role") {
      const int n = ++credential_fetches;
      return FakeResponse::Ok(
          "{\"Code\": \"Success\", \"LastUpdated\": \"2024-01-01T00:00:00Z\", "
          "\"Type\": \"AWS-HMAC\", \"AccessKeyId\": \"ASIAIMDS" +
          std::to_string(n) +
          "\", \"SecretAccessKey\": \"imdssecret\", \"Token\": \"imdstoken\", "
          "\"Expiration\": \"" +
          IsoTime(std::chrono::system_clock::now() + std::chrono::seconds(lifetime_s.load())) +
          "\"}");
    }
    return Code(404);
  }
  static FakeResponse Code(int code) {
    FakeResponse r;
    r.status = code;
    return r;
  }
};

class ImdsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_.Unset("AWS_EC2_METADATA_DISABLED");
    env_.Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", server_.endpoint() + "/");
  }
  ScopedAwsEnv env_;
  std::shared_ptr<FakeImds> imds_ = std::make_shared<FakeImds>();
  FakeHttpServer server_{[imds = imds_](const FakeRequest& r) { return (*imds)(r); }};
};

TEST_F(ImdsTest, FetchesRoleCredentialsWithASessionToken) {
  auto c = MakeInstanceMetadataCredentialsProvider()->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "ASIAIMDS1");
  EXPECT_EQ(c->secret_access_key, "imdssecret");
  EXPECT_EQ(c->session_token, "imdstoken");
  ASSERT_TRUE(c->expiration.has_value());
  EXPECT_GT(*c->expiration, std::chrono::system_clock::now() + std::chrono::minutes(50));
  EXPECT_EQ(c->source, "instance metadata (role orchard-role)");
  EXPECT_EQ(imds_->token_requests.load(), 1);
  const auto received = server_.received();
  ASSERT_EQ(received.size(), 3u);
  EXPECT_EQ(received[0].method, "PUT");
  EXPECT_EQ(received[0].Header("x-aws-ec2-metadata-token-ttl-seconds"), "21600");
  EXPECT_EQ(received[1].Header("x-aws-ec2-metadata-token"), "imds-token-123");
  EXPECT_EQ(received[2].Header("x-aws-ec2-metadata-token"), "imds-token-123");
}

TEST_F(ImdsTest, CachesUntilCloseToExpiration) {
  auto provider = MakeInstanceMetadataCredentialsProvider();
  ASSERT_TRUE(provider->Get().ok());
  ASSERT_TRUE(provider->Get().ok());
  EXPECT_EQ(imds_->credential_fetches.load(), 1);  // an hour left: cached

  imds_->lifetime_s = 120;  // within the 5-minute refresh margin
  auto fresh = MakeInstanceMetadataCredentialsProvider();
  auto a = fresh->Get();
  auto b = fresh->Get();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(imds_->credential_fetches.load(), 3);  // refreshed before expiring
  EXPECT_NE(a->access_key_id, b->access_key_id);
}

TEST_F(ImdsTest, FallsBackToImdsV1WhenTokensAreRefused) {
  imds_->v1_only = true;
  auto c = MakeInstanceMetadataCredentialsProvider()->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "ASIAIMDS1");
}

TEST_F(ImdsTest, NoRoleIsNotFound) {
  imds_->has_role = false;
  const Status st = MakeInstanceMetadataCredentialsProvider()->Get().status();
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_NE(st.message().find("no IAM role"), std::string::npos);
}

TEST_F(ImdsTest, ChainUsesTheRoleLastAndCanBeDisabled) {
  auto c = MakeDefaultCredentialsChain()->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "ASIAIMDS1");

  env_.Set("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRON");
  env_.Set("AWS_SECRET_ACCESS_KEY", "envsecret");
  auto e = MakeDefaultCredentialsChain()->Get();
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->access_key_id, "AKIDFROMENVIRON");
  const int before = server_.requests();

  env_.Unset("AWS_ACCESS_KEY_ID");
  env_.Unset("AWS_SECRET_ACCESS_KEY");
  env_.Set("AWS_EC2_METADATA_DISABLED", "true");
  EXPECT_EQ(MakeDefaultCredentialsChain()->Get().status().code(), StatusCode::kNotFound);
  EXPECT_EQ(server_.requests(), before);  // not even asked
}

TEST(ImdsUnreachableTest, FailsFastWithTheClearMessage) {
  ScopedAwsEnv env;
  int port;
  {
    FakeHttpServer closed([](const FakeRequest&) { return FakeResponse::Ok(""); });
    port = closed.port();
  }
  env.Unset("AWS_EC2_METADATA_DISABLED");
  env.Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:" + std::to_string(port));
  const auto start = std::chrono::steady_clock::now();
  const Status st = MakeDefaultCredentialsChain()->Get().status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_NE(st.message().find("no AWS credentials found"), std::string::npos);
  EXPECT_NE(st.message().find("instance metadata service"), std::string::npos) << st.message();
}

TEST(ContainerCredentialsTest, FullUriWithAuthorizationToken) {
  ScopedAwsEnv env;
  FakeHttpServer server([](const FakeRequest& r) {
    if (r.Path() != "/creds" || r.Header("authorization") != "Bearer abc") {
      FakeResponse denied;
      denied.status = 403;
      return denied;
    }
    return FakeResponse::Ok(
        "{\"AccessKeyId\":\"ASIACONTAINER1\",\"SecretAccessKey\":\"c\",\"Token\":\"t\","
        "\"Expiration\":\"2099-01-01T00:00:00Z\"}");
  });
  env.Set("AWS_CONTAINER_CREDENTIALS_FULL_URI", server.endpoint() + "/creds");
  env.Set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer abc");
  auto c = MakeDefaultCredentialsChain()->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "ASIACONTAINER1");
  EXPECT_EQ(c->session_token, "t");
}

// ---- The INI parser ---------------------------------------------------------------------------

TEST(ParseIniTest, SectionsKeysCommentsAndNestedSettings) {
  const s3internal::IniFile ini = s3internal::ParseIni(
      "ignored = before any section\n"
      "[default]\r\n"
      "Region = eu-west-1 \r\n"
      "# comment = no\n"
      "; comment = no\n"
      "s3 =\n"
      "  addressing_style = path\n"
      "\tmax_concurrent_requests = 4\n"
      "url = https://h/?a=b\n"
      "empty =\n"
      "no equals sign\n"
      "region = us-east-2\n"
      "[  profile   dev  ]\n"
      "aws_access_key_id=AKID\n"
      "[broken\n"
      "lost = yes\n"
      "[default]\n"
      "output = json\n");
  ASSERT_EQ(ini.size(), 2u);
  const auto& d = ini.at("default");
  EXPECT_EQ(d.at("region"), "us-east-2");  // keys lower-cased, the later one wins
  EXPECT_EQ(d.at("s3"), "");
  EXPECT_EQ(d.count("addressing_style"), 0u);  // nested settings are skipped
  EXPECT_EQ(d.count("max_concurrent_requests"), 0u);
  EXPECT_EQ(d.at("url"), "https://h/?a=b");  // split at the first '='
  EXPECT_EQ(d.at("empty"), "");
  EXPECT_EQ(d.at("output"), "json");  // a repeated section adds to the first
  EXPECT_EQ(d.count("# comment"), 0u);
  EXPECT_EQ(ini.at("profile dev").at("aws_access_key_id"), "AKID");
  for (const auto& [section, values] : ini) EXPECT_EQ(values.count("lost"), 0u) << section;
  EXPECT_TRUE(s3internal::ParseIni("").empty());
  EXPECT_TRUE(s3internal::ParseIni(std::string("\0[\0]\n=\n", 7)).size() <= 1);
}

// ---- Roles assumed through STS ---------------------------------------------------------------

// A loopback STS (and, for other requests, a tiny S3) that checks every AssumeRole
// signature against the secret of the access key that signed it, as AWS does.
struct FakeSts {
  std::mutex mu;
  std::map<std::string, std::pair<std::string, std::string>> keys;  // id -> secret, token
  struct Call {
    std::string signed_by;
    std::string session_token;
    std::map<std::string, std::string> form;
    std::string content_type;
    std::string scope;
  };
  std::vector<Call> calls;
  std::vector<std::string> s3_signers;  // access key ids of the other requests
  std::vector<std::string> s3_tokens;
  int fail_next = 0;  // answer this many AssumeRoles with 503
  bool deny = false;  // answer AssumeRole with 403 AccessDenied
  int lifetime_s = 3600;
  int issued = 0;

  void AddKey(const std::string& id, const std::string& secret, const std::string& token = "") {
    std::lock_guard<std::mutex> lock(mu);
    keys[id] = {secret, token};
  }

  static std::map<std::string, std::string> ParseForm(const std::string& body) {
    std::map<std::string, std::string> form;
    size_t start = 0;
    while (start <= body.size()) {
      size_t end = body.find('&', start);
      if (end == std::string::npos) end = body.size();
      const std::string pair = body.substr(start, end - start);
      const size_t eq = pair.find('=');
      if (eq != std::string::npos) {
        form[sigv4::UriDecode(pair.substr(0, eq), true)] =
            sigv4::UriDecode(pair.substr(eq + 1), true);
      }
      start = end + 1;
    }
    return form;
  }

  // Recomputes the request's SigV4 signature with the secret of the key it names; returns
  // that key id, or "" with `why` when it does not verify.
  std::string Verify(const FakeRequest& r, const std::string& service, std::string* scope,
                     std::string* why) {
    const std::string auth = r.Header("authorization");
    const size_t cred = auth.find("Credential=");
    const size_t slash = auth.find('/', cred);
    const size_t comma = auth.find(',', cred);
    const size_t sh = auth.find("SignedHeaders=");
    const size_t sig = auth.find("Signature=");
    if (cred == std::string::npos || sh == std::string::npos || sig == std::string::npos) {
      *why = "no SigV4 Authorization header";
      return "";
    }
    const std::string id = auth.substr(cred + 11, slash - cred - 11);
    *scope = auth.substr(slash + 1, comma - slash - 1);  // date/region/service/aws4_request
    const std::string signed_headers = auth.substr(sh + 14, auth.find(',', sh) - sh - 14);
    std::pair<std::string, std::string> secret;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = keys.find(id);
      if (it == keys.end()) {
        *why = "unknown access key " + id;
        return "";
      }
      secret = it->second;
    }
    if (secret.second != r.Header("x-amz-security-token")) {
      *why = "wrong session token for " + id;
      return "";
    }
    sigv4::Request request;
    request.method = r.method;
    request.path = r.Path();
    request.payload_hash =
        service == "s3" ? r.Header("x-amz-content-sha256") : sigv4::Sha256Hex(r.body);
    const std::string query = r.Query();
    for (const auto& [k, v] : ParseForm(query)) request.query.emplace_back(k, v);
    size_t at = 0;
    while (at <= signed_headers.size()) {
      size_t end = signed_headers.find(';', at);
      if (end == std::string::npos) end = signed_headers.size();
      const std::string name = signed_headers.substr(at, end - at);
      if (name != "x-amz-date" && name != "x-amz-security-token" &&
          name != "x-amz-content-sha256") {
        request.headers.emplace_back(name, r.Header(name));
      }
      at = end + 1;
    }
    const std::string date = r.Header("x-amz-date");
    std::tm tm{};
    strptime(date.c_str(), "%Y%m%dT%H%M%SZ", &tm);
    sigv4::SigningParams params;
    params.region = scope->substr(9, scope->find('/', 9) - 9);
    params.service = service;
    params.unix_time = timegm(&tm);
    params.add_content_sha256_header = service == "s3";
    params.normalize_path = service != "s3";
    params.double_encode_path = service != "s3";
    AwsCredentials c;
    c.access_key_id = id;
    c.secret_access_key = secret.first;
    c.session_token = secret.second;
    const std::string expected = sigv4::SignHeaders(request, c, params).signature;
    if (auth.substr(sig + 10) != expected) {
      *why = "SignatureDoesNotMatch for " + id;
      return "";
    }
    return id;
  }

  FakeResponse operator()(const FakeRequest& r) {
    const bool sts = r.method == "POST" && r.Path() == "/";
    std::string scope;
    std::string why;
    const std::string signer = Verify(r, sts ? "sts" : "s3", &scope, &why);
    if (signer.empty()) {
      return FakeResponse::S3Error(403, "SignatureDoesNotMatch", why);
    }
    std::lock_guard<std::mutex> lock(mu);
    if (!sts) {
      s3_signers.push_back(signer);
      s3_tokens.push_back(r.Header("x-amz-security-token"));
      return FakeResponse::Ok("object bytes");
    }
    calls.push_back({signer, r.Header("x-amz-security-token"), ParseForm(r.body),
                     r.Header("content-type"), scope});
    if (fail_next > 0) {
      --fail_next;
      return FakeResponse::S3Error(503, "ServiceUnavailable", "try later");
    }
    if (deny) {
      FakeResponse denied;
      denied.status = 403;
      denied.body =
          "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>"
          "<Type>Sender</Type><Code>AccessDenied</Code><Message>User " +
          signer +
          " is not authorized to perform: sts:AssumeRole</Message></Error>"
          "<RequestId>req-42</RequestId></ErrorResponse>";
      return denied;
    }
    const int n = ++issued;
    const std::string id = "ASIATEMP" + std::to_string(n);
    const std::string secret = "tempsecret" + std::to_string(n) + "-wJalrXUtnFEMI/K7MDENG";
    const std::string token = "temptoken" + std::to_string(n) + "-IQoJb3JpZ2luX2VjEXAMPLE";
    keys[id] = {secret, token};
    return FakeResponse::Ok(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        "<AssumeRoleResult><Credentials><AccessKeyId>" +
        id + "</AccessKeyId><SecretAccessKey>" + secret + "</SecretAccessKey><SessionToken>" +
        token + "</SessionToken><Expiration>" +
        IsoTime(std::chrono::system_clock::now() + std::chrono::seconds(lifetime_s)) +
        "</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-"
        "role/r/s</Arn></AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>");
  }
};

constexpr char kBaseId[] = "AKIDBASEBASEBASE";
constexpr char kBaseSecret[] = "basesecret-wJalrXUtnFEMI/K7MDENGbPxRfiCY";
constexpr char kRoleArn[] = "arn:aws:iam::123456789012:role/reader";

class AssumeRoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sts_->AddKey(kBaseId, kBaseSecret);
    sts_->AddKey("AKIDENVIRONMENT1", "envsecret-0123456789");
    env_.Set("AWS_ENDPOINT_URL_STS", server_.endpoint());
    WriteText(env_.home() / ".aws" / "credentials",
              std::string("[base]\naws_access_key_id = ") + kBaseId +
                  "\naws_secret_access_key = " + kBaseSecret + "\n");
  }
  void Config(const std::string& text) { WriteText(env_.home() / ".aws" / "config", text); }
  std::string ConfigPath() const { return (env_.home() / ".aws" / "config").string(); }

  ScopedAwsEnv env_;
  std::shared_ptr<FakeSts> sts_ = std::make_shared<FakeSts>();
  FakeHttpServer server_{[sts = sts_](const FakeRequest& r) { return (*sts)(r); }};
};

TEST_F(AssumeRoleTest, SourceProfileKeysSignTheCallAndItsCredentialsAreReturned) {
  Config(std::string("[profile reader]\nrole_arn = ") + kRoleArn +
         "\nsource_profile = base\nrole_session_name = orchard-test\nexternal_id = ext-1\n"
         "duration_seconds = 1800\nregion = eu-west-3\n");
  auto c = MakeProfileCredentialsProvider("reader")->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "ASIATEMP1");
  EXPECT_EQ(c->secret_access_key, "tempsecret1-wJalrXUtnFEMI/K7MDENG");
  EXPECT_EQ(c->session_token, "temptoken1-IQoJb3JpZ2luX2VjEXAMPLE");
  ASSERT_TRUE(c->expiration.has_value());
  EXPECT_GT(*c->expiration, std::chrono::system_clock::now() + std::chrono::minutes(50));
  EXPECT_EQ(c->source, std::string("role ") + kRoleArn + " (profile reader)");

  ASSERT_EQ(sts_->calls.size(), 1u);
  const FakeSts::Call& call = sts_->calls[0];
  EXPECT_EQ(call.signed_by, kBaseId);  // and the signature verified with its secret
  EXPECT_EQ(call.session_token, "");
  EXPECT_NE(call.scope.find("/eu-west-3/sts/aws4_request"), std::string::npos) << call.scope;
  EXPECT_EQ(call.content_type, "application/x-www-form-urlencoded; charset=utf-8");
  EXPECT_EQ(call.form, (std::map<std::string, std::string>{{"Action", "AssumeRole"},
                                                           {"Version", "2011-06-15"},
                                                           {"RoleArn", kRoleArn},
                                                           {"RoleSessionName", "orchard-test"},
                                                           {"ExternalId", "ext-1"},
                                                           {"DurationSeconds", "1800"}}));
}

TEST_F(AssumeRoleTest, CachedUntilCloseToExpiryThenRefreshed) {
  Config(std::string("[profile reader]\nrole_arn = ") + kRoleArn + "\nsource_profile = base\n");
  auto provider = MakeProfileCredentialsProvider("reader");
  auto a = provider->Get();
  auto b = provider->Get();
  ASSERT_TRUE(a.ok() && b.ok()) << a.status().ToString();
  EXPECT_EQ(sts_->calls.size(), 1u);  // an hour left: cached
  EXPECT_EQ(a->access_key_id, b->access_key_id);
  // A default session name is made up.
  EXPECT_EQ(sts_->calls[0].form.at("RoleSessionName").rfind("orchard-", 0), 0u);
  EXPECT_EQ(sts_->calls[0].form.count("DurationSeconds"), 0u);

  sts_->lifetime_s = 120;  // within the 5-minute refresh margin
  auto fresh = MakeProfileCredentialsProvider("reader");
  auto c = fresh->Get();
  auto d = fresh->Get();
  ASSERT_TRUE(c.ok() && d.ok());
  EXPECT_EQ(sts_->calls.size(), 3u);
  EXPECT_NE(c->access_key_id, d->access_key_id);

  // A refresh that fails while the cached credentials still work keeps them.
  sts_->deny = true;
  auto e = fresh->Get();
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->access_key_id, d->access_key_id);
}

TEST_F(AssumeRoleTest, ChainedRolesSignWithTheTemporaryCredentialsOfTheFirst) {
  Config(std::string("[profile first]\nrole_arn = arn:aws:iam::123456789012:role/first\n"
                     "source_profile = base\n"
                     "[profile second]\nrole_arn = ") +
         kRoleArn + "\nsource_profile = first\n");
  auto c = MakeProfileCredentialsProvider("second")->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "ASIATEMP2");
  ASSERT_EQ(sts_->calls.size(), 2u);
  EXPECT_EQ(sts_->calls[0].signed_by, kBaseId);
  EXPECT_EQ(sts_->calls[0].form.at("RoleArn"), "arn:aws:iam::123456789012:role/first");
  EXPECT_EQ(sts_->calls[1].signed_by, "ASIATEMP1");
  EXPECT_EQ(sts_->calls[1].session_token, "temptoken1-IQoJb3JpZ2luX2VjEXAMPLE");
  EXPECT_EQ(sts_->calls[1].form.at("RoleArn"), kRoleArn);
}

TEST_F(AssumeRoleTest, ASourceProfileWithKeysUsesThemEvenIfItNamesARole) {
  // The AWS CLI's rule: as a source, static keys win over the profile's own role_arn; as
  // the profile in use, role_arn wins ("source_profile = self" uses the profile's keys).
  Config(std::string("[profile keys-and-role]\naws_access_key_id = ") + kBaseId +
         "\naws_secret_access_key = " + kBaseSecret +
         "\nrole_arn = arn:aws:iam::123456789012:role/ignored-as-source\nsource_profile = base\n"
         "[profile top]\nrole_arn = " +
         kRoleArn +
         "\nsource_profile = keys-and-role\n"
         "[profile self]\nrole_arn = " +
         kRoleArn + "\nsource_profile = self\naws_access_key_id = " + kBaseId +
         "\naws_secret_access_key = " + kBaseSecret + "\n");
  auto top = MakeProfileCredentialsProvider("top")->Get();
  ASSERT_TRUE(top.ok()) << top.status().ToString();
  ASSERT_EQ(sts_->calls.size(), 1u);
  EXPECT_EQ(sts_->calls[0].signed_by, kBaseId);
  auto self = MakeProfileCredentialsProvider("self")->Get();
  ASSERT_TRUE(self.ok()) << self.status().ToString();
  ASSERT_EQ(sts_->calls.size(), 2u);
  EXPECT_EQ(sts_->calls[1].signed_by, kBaseId);
  EXPECT_EQ(self->access_key_id, "ASIATEMP2");
}

TEST_F(AssumeRoleTest, CredentialSourceEnvironment) {
  Config(std::string("[profile env-role]\nrole_arn = ") + kRoleArn +
         "\ncredential_source = Environment\n"
         "[profile bad-source]\nrole_arn = " +
         kRoleArn + "\ncredential_source = Ec2Instance\n");
  const Status missing = MakeProfileCredentialsProvider("env-role")->Get().status();
  EXPECT_EQ(missing.code(), StatusCode::kInvalidArgument) << missing.ToString();
  EXPECT_NE(missing.message().find("AWS_ACCESS_KEY_ID is not set"), std::string::npos);
  env_.Set("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT1");
  env_.Set("AWS_SECRET_ACCESS_KEY", "envsecret-0123456789");
  auto c = MakeProfileCredentialsProvider("env-role")->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(sts_->calls.size(), 1u);
  EXPECT_EQ(sts_->calls[0].signed_by, "AKIDENVIRONMENT1");
  const Status bad = MakeProfileCredentialsProvider("bad-source")->Get().status();
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("expected Environment, Ec2InstanceMetadata or EcsContainer"),
            std::string::npos)
      << bad.message();
}

TEST_F(AssumeRoleTest, BrokenRoleProfilesAreReportedBeforeAnyCall) {
  std::string config;
  for (int i = 1; i <= 6; ++i) {
    config += "[profile r" + std::to_string(i) + "]\nrole_arn = arn:aws:iam::1:role/r" +
              std::to_string(i) +
              "\nsource_profile = " + (i == 6 ? "base" : "r" + std::to_string(i + 1)) + "\n";
  }
  config +=
      "[profile x]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = y\n"
      "[profile y]\nrole_arn = arn:aws:iam::1:role/y\nsource_profile = x\n"
      "[profile selfless]\nrole_arn = arn:aws:iam::1:role/s\nsource_profile = selfless\n"
      "[profile both]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = base\n"
      "credential_source = Environment\n"
      "[profile neither]\nrole_arn = arn:aws:iam::1:role/n\n"
      "[profile ghost-source]\nrole_arn = arn:aws:iam::1:role/g\nsource_profile = ghost\n"
      "[profile empty-source]\nrole_arn = arn:aws:iam::1:role/e\nsource_profile = empty\n"
      "[profile empty]\nregion = us-west-2\n"
      "[profile long]\nrole_arn = arn:aws:iam::1:role/l\nsource_profile = base\n"
      "duration_seconds = 2h\n";
  Config(config);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"r1", "role profiles chained more than 5 deep: r1 -> r2 -> r3 -> r4 -> r5 -> r6"},
      {"r2", ""},  // five deep is fine
      {"x", "the source_profile settings form a cycle: x -> y -> x"},
      {"selfless", "is its own source_profile but has no keys"},
      {"both", "sets both source_profile and credential_source"},
      {"neither", "has role_arn but neither source_profile nor credential_source"},
      {"ghost-source", "has source_profile 'ghost', which is in neither"},
      {"empty-source", "has source_profile 'empty', which has no credentials"},
      {"long", "has duration_seconds '2h': expected a whole number from 900 to 43200"},
  };
  for (const auto& [profile, expected] : cases) {
    const size_t before = sts_->calls.size();
    const Status st = MakeProfileCredentialsProvider(profile)->Get().status();
    if (expected.empty()) {
      EXPECT_TRUE(st.ok()) << profile << ": " << st.ToString();
      EXPECT_EQ(sts_->calls.size(), before + 5) << profile;
      continue;
    }
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << profile << ": " << st.ToString();
    EXPECT_NE(st.message().find(expected), std::string::npos) << profile << ": " << st.message();
    EXPECT_EQ(sts_->calls.size(), before) << profile;
  }
}

TEST_F(AssumeRoleTest, RefusalsAreReportedWithoutSecretsAndTransientFailuresRetried) {
  Config(std::string("[profile reader]\nrole_arn = ") + kRoleArn + "\nsource_profile = base\n");
  sts_->fail_next = 2;
  auto retried = MakeProfileCredentialsProvider("reader")->Get();
  ASSERT_TRUE(retried.ok()) << retried.status().ToString();
  EXPECT_EQ(sts_->calls.size(), 3u);

  sts_->deny = true;
  const Status denied = MakeProfileCredentialsProvider("reader")->Get().status();
  EXPECT_EQ(denied.code(), StatusCode::kIOError);
  EXPECT_NE(denied.message().find(std::string("permission denied: AssumeRole ") + kRoleArn +
                                  " (profile 'reader') at " + server_.endpoint() +
                                  " failed: HTTP 403 AccessDenied: User AKIDBASEBASEBASE is not "
                                  "authorized to perform: sts:AssumeRole (request id req-42)"),
            std::string::npos)
      << denied.message();
  EXPECT_NE(denied.message().find("signed with access key AKID...BASE from shared file"),
            std::string::npos)
      << denied.message();
  EXPECT_EQ(denied.message().find(kBaseSecret), std::string::npos);

  // The chain reports it rather than trying the next source.
  env_.Set("AWS_PROFILE", "reader");
  const Status chain = MakeDefaultCredentialsChain()->Get().status();
  EXPECT_EQ(chain.code(), StatusCode::kIOError) << chain.ToString();

  // A wrong source secret: the STS signature check fails.
  WriteText(env_.home() / ".aws" / "credentials",
            std::string("[base]\naws_access_key_id = ") + kBaseId +
                "\naws_secret_access_key = not-the-secret-0123456789\n");
  sts_->deny = false;
  const Status wrong = MakeProfileCredentialsProvider("reader")->Get().status();
  EXPECT_NE(wrong.message().find("SignatureDoesNotMatch"), std::string::npos) << wrong.message();
  EXPECT_EQ(wrong.message().find("not-the-secret-0123456789"), std::string::npos);
}

TEST_F(AssumeRoleTest, EndpointFromTheEnvironmentOrTheProfile) {
  env_.Unset("AWS_ENDPOINT_URL_STS");
  const std::map<std::string, std::string> none;
  EXPECT_EQ(s3internal::StsEndpoint(none, "eu-west-1"), "https://sts.eu-west-1.amazonaws.com");
  EXPECT_EQ(s3internal::StsEndpoint({{"endpoint_url", "http://global:1"}}, "x"), "http://global:1");
  EXPECT_EQ(s3internal::StsEndpoint(
                {{"endpoint_url", "http://global:1"}, {"sts_endpoint_url", "http://sts:2"}}, "x"),
            "http://sts:2");
  env_.Set("AWS_ENDPOINT_URL", "http://env-global:3");
  EXPECT_EQ(s3internal::StsEndpoint({{"sts_endpoint_url", "http://sts:2"}}, "x"),
            "http://env-global:3");
  env_.Set("AWS_ENDPOINT_URL_STS", "http://env-sts:4");
  EXPECT_EQ(s3internal::StsEndpoint(none, "x"), "http://env-sts:4");

  // A profile's endpoint_url reaches the fake STS.
  env_.Unset("AWS_ENDPOINT_URL_STS");
  env_.Unset("AWS_ENDPOINT_URL");
  Config(std::string("[profile reader]\nrole_arn = ") + kRoleArn +
         "\nsource_profile = base\nendpoint_url = " + server_.endpoint() + "/\n");
  auto c = MakeProfileCredentialsProvider("reader")->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(sts_->calls.size(), 1u);
}

TEST_F(AssumeRoleTest, S3RequestsAreSignedWithTheRoleCredentials) {
  // AWS_ENDPOINT_URL sends both S3 and STS to the fake; the S3 request must carry the
  // role's temporary key and session token, not the source profile's key.
  env_.Unset("AWS_ENDPOINT_URL_STS");
  env_.Set("AWS_ENDPOINT_URL", server_.endpoint());
  env_.Set("AWS_PROFILE", "reader");
  Config(std::string("[profile reader]\nrole_arn = ") + kRoleArn + "\nsource_profile = base\n");
  auto options = S3OptionsFromEnvironment();
  ASSERT_TRUE(options.ok());
  options->retry = MakeStandardRetryPolicy(std::chrono::milliseconds(0));
  auto client = S3Client::Make(*options);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  for (int i = 0; i < 3; ++i) {
    auto got = (*client)->GetObject({"bucket", "k.jpg"});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
  }
  EXPECT_EQ(sts_->calls.size(), 1u);  // assumed once, when the client was made
  EXPECT_EQ(sts_->s3_signers, (std::vector<std::string>(3, "ASIATEMP1")));
  EXPECT_EQ(sts_->s3_tokens, (std::vector<std::string>(3, "temptoken1-IQoJb3JpZ2luX2VjEXAMPLE")));
}

TEST(AssumeRoleMotoTest, MotoStsIssuesCredentialsThatMotoS3Accepts) {
  const testing::S3TestServer server = testing::S3TestServer::FromEnvironment();
  if (server.moto_endpoint.empty()) GTEST_SKIP() << testing::kNoS3ServerMessage;
  ScopedAwsEnv env;
  WriteText(env.home() / ".aws" / "credentials",
            "[base]\naws_access_key_id = AKIAMOTOSOURCE01\naws_secret_access_key = motosecret\n");
  WriteText(env.home() / ".aws" / "config",
            std::string("[profile reader]\nrole_arn = ") + kRoleArn +
                "\nsource_profile = base\nrole_session_name = orchard-moto\n"
                "duration_seconds = 900\n");
  env.Set("AWS_ENDPOINT_URL", server.moto_endpoint);
  env.Set("AWS_PROFILE", "reader");
  auto c = MakeDefaultCredentialsChain()->Get();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id.rfind("ASIA", 0), 0u) << c->access_key_id;
  EXPECT_FALSE(c->secret_access_key.empty());
  EXPECT_FALSE(c->session_token.empty());
  ASSERT_TRUE(c->expiration.has_value());
  const auto left = *c->expiration - std::chrono::system_clock::now();
  EXPECT_GT(left, std::chrono::minutes(10));
  EXPECT_LT(left, std::chrono::minutes(16));  // DurationSeconds = 900 was sent
  auto options = S3OptionsFromEnvironment();
  ASSERT_TRUE(options.ok());
  auto client = S3Client::Make(*options);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  const std::string bucket = "orchard-sts-" + std::to_string(::getpid());
  s3internal::S3Request create;
  create.operation = "CreateBucket";
  create.method = "PUT";
  create.bucket = bucket;
  create.bucket_level = true;
  ASSERT_TRUE((*client)->impl()->Send(create).ok());
  ASSERT_TRUE((*client)->PutObject({bucket, "k"}, "via role").ok());
  auto got = (*client)->GetObject({bucket, "k"});
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(std::string(got->begin(), got->end()), "via role");
  EXPECT_TRUE((*client)->DeleteObject({bucket, "k"}).ok());
  s3internal::S3Request drop = create;
  drop.operation = "DeleteBucket";
  drop.method = "DELETE";
  EXPECT_TRUE((*client)->impl()->Send(drop).ok());
}

TEST(Iso8601Test, Parses) {
  const auto t = s3internal::ParseIso8601("2017-05-17T15:09:54Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*t), 1495033794);
  EXPECT_TRUE(s3internal::ParseIso8601("2017-05-17T15:09:54.123+00:00").has_value());
  EXPECT_FALSE(s3internal::ParseIso8601("yesterday").has_value());
}

// Found by fuzz/s3_xml_fuzzer.cc (fuzz/reproducers/s3_xml/assume_role_expiration_*): years
// outside system_clock's nanosecond range (1677..2262) overflowed when converted, and
// sscanf read "60-1-0T03:04:05" as the year 60.
TEST(Iso8601Test, StrictFieldsAndTheClocksRange) {
  using std::chrono::system_clock;
  auto seconds = [](const char* text) {
    const auto t = s3internal::ParseIso8601(text);
    return t.has_value() ? system_clock::to_time_t(*t) : std::time_t{-1};
  };
  EXPECT_EQ(seconds("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(seconds("2017-05-17T15:09:54"), 1495033794);          // no zone: UTC
  EXPECT_EQ(seconds(" 2017-05-17t15:09:54z "), 1495033794);       // trimmed, lower case
  EXPECT_EQ(seconds("2017-05-17 15:09:54.999999Z"), 1495033794);  // fraction dropped
  EXPECT_EQ(seconds("2017-05-17T17:09:54+02:00"), 1495033794);    // offsets applied
  EXPECT_EQ(seconds("2017-05-17T13:39:54-0130"), 1495033794);
  EXPECT_EQ(seconds("2024-02-29T00:00:00Z"), 1709164800);  // a leap day
  EXPECT_EQ(s3internal::ParseIso8601("2300-01-01T00:00:00Z"), system_clock::time_point::max());
  EXPECT_EQ(s3internal::ParseIso8601("9999-12-31T23:59:59Z"), system_clock::time_point::max());
  EXPECT_LT(*s3internal::ParseIso8601("2262-04-11T23:47:16Z"), system_clock::time_point::max());
  for (const char* bad :
       {"", "60-1-0T03:04:05", "0060-01-01T03:04:05", "1969-12-31T23:59:59Z",
        "1970-01-01T00:00:00+00:01", "1700-01-01T00:00:00Z", "-2017-05-17T15:09:54Z",
        "2017-13-01T00:00:00Z", "2017-00-01T00:00:00Z", "2023-02-29T00:00:00Z",
        "2017-05-32T00:00:00Z", "2017-05-17T24:00:00Z", "2017-05-17T15:60:00Z",
        "2017-05-17T15:09:61Z", "2017-05-17T15:09:54.Z", "2017-05-17T15:09:54Zjunk",
        "2017-05-17T15:09:54+25:00", "2017-5-17T15:09:54Z", "2017-05-17"}) {
    EXPECT_FALSE(s3internal::ParseIso8601(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace orchard
