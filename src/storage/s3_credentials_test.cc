// Credential sources and their order: environment, shared files with profiles, container
// endpoint, and the instance role through IMDSv2 (against a loopback fake that insists on
// the session token).
#include "orchard/s3_credentials.h"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>

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

TEST_F(ProfileCredentialsTest, UnsupportedAndMissingProfiles) {
  const Status role = MakeProfileCredentialsProvider("role")->Get().status();
  EXPECT_EQ(role.code(), StatusCode::kUnsupported);
  EXPECT_NE(role.message().find("role_arn"), std::string::npos);
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

TEST(Iso8601Test, Parses) {
  const auto t = s3internal::ParseIso8601("2017-05-17T15:09:54Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*t), 1495033794);
  EXPECT_TRUE(s3internal::ParseIso8601("2017-05-17T15:09:54.123+00:00").has_value());
  EXPECT_FALSE(s3internal::ParseIso8601("yesterday").has_value());
}

}  // namespace
}  // namespace orchard
