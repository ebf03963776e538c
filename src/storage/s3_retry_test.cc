// The retry policy, and the client's handling of server and transport failures against a
// loopback fake server that answers with S3 errors, resets, truncates and stalls.
#include "storage/s3_retry.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include "orchard/s3.h"
#include "storage/s3_internal.h"
#include "storage/s3_test_util.h"

namespace orchard {
namespace {

using testing::FakeHttpServer;
using testing::FakeRequest;
using testing::FakeResponse;
using A = FakeResponse::Action;
using std::chrono::milliseconds;

constexpr char kSecret[] = "fakeSecretKeyThatMustNeverBePrinted/123";

S3Error Http(int status, const std::string& code = "") {
  S3Error e;
  e.http_status = status;
  e.code = code;
  return e;
}

S3Error Transport(S3Error::Transport t) {
  S3Error e;
  e.transport = t;
  return e;
}

TEST(S3RetryPolicyTest, StandardModeClassification) {
  using T = S3Error::Transport;
  for (const S3Error& e :
       {Http(500, "InternalError"), Http(502), Http(503), Http(503, "SlowDown"), Http(504),
        Http(429), Http(400, "RequestTimeout"), Http(400, "ThrottlingException"),
        Http(400, "Throttling"), Http(400, "RequestLimitExceeded"), Transport(T::kReset),
        Transport(T::kTimeout), Transport(T::kTruncated), Transport(T::kConnectFailed)}) {
    EXPECT_TRUE(IsRetryableS3Error(e)) << e.ToString();
  }
  for (const S3Error& e :
       {Http(403, "AccessDenied"), Http(403, "SignatureDoesNotMatch"), Http(404, "NoSuchKey"),
        Http(404, "NoSuchBucket"), Http(400, "InvalidArgument"), Http(301, "PermanentRedirect"),
        Transport(T::kDnsFailed), Transport(T::kTls), Transport(T::kTooLarge)}) {
    EXPECT_FALSE(IsRetryableS3Error(e)) << e.ToString();
  }
}

TEST(S3RetryPolicyTest, FullJitterExponentialBackoffCappedAt20s) {
  s3internal::StandardRetryPolicy top(milliseconds(100), milliseconds(20000), [] { return 1.0; });
  EXPECT_EQ(top.DelayBeforeNextRetry(Http(503), 1), milliseconds(100));
  EXPECT_EQ(top.DelayBeforeNextRetry(Http(503), 2), milliseconds(200));
  EXPECT_EQ(top.DelayBeforeNextRetry(Http(503), 3), milliseconds(400));
  EXPECT_EQ(top.DelayBeforeNextRetry(Http(503), 8), milliseconds(12800));
  EXPECT_EQ(top.DelayBeforeNextRetry(Http(503), 9), milliseconds(20000));
  EXPECT_EQ(top.DelayBeforeNextRetry(Http(503), 1000), milliseconds(20000));
  s3internal::StandardRetryPolicy bottom(milliseconds(100), milliseconds(20000),
                                         [] { return 0.0; });
  EXPECT_EQ(bottom.DelayBeforeNextRetry(Http(503), 5), milliseconds(0));

  // The default random source stays within [0, cap] and is not constant.
  auto policy = MakeStandardRetryPolicy();
  std::set<int64_t> seen;
  for (int i = 0; i < 200; ++i) {
    const auto d = policy->DelayBeforeNextRetry(Http(503), 4);
    EXPECT_GE(d.count(), 0);
    EXPECT_LE(d.count(), 800);
    seen.insert(d.count());
  }
  EXPECT_GT(seen.size(), 20u);
  EXPECT_EQ(MakeStandardRetryPolicy(milliseconds(0))->DelayBeforeNextRetry(Http(503), 3),
            milliseconds(0));
}

// A client for the fake server, with a zero-delay standard policy.
std::shared_ptr<S3Client> ClientFor(const std::string& endpoint, S3Options options = {}) {
  options.endpoint = endpoint;
  AwsCredentials creds;
  creds.access_key_id = "AKIDFAKEFAKEFAKE";
  creds.secret_access_key = kSecret;
  options.credentials = MakeStaticCredentialsProvider(creds);
  if (!options.retry) options.retry = MakeStandardRetryPolicy(milliseconds(0));
  auto client = S3Client::Make(options);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return *client;
}

void ExpectNoSecret(const Status& st) {
  EXPECT_EQ(st.message().find(kSecret), std::string::npos) << st.message();
}

// Fails the first `failures` requests with `fail`, then serves "payload".
FakeHttpServer::Handler FailThenServe(int failures, FakeResponse fail) {
  auto count = std::make_shared<std::atomic<int>>(0);
  return [=](const FakeRequest&) {
    return count->fetch_add(1) < failures ? fail : FakeResponse::Ok("payload");
  };
}

std::string Text(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

TEST(S3ClientRetryTest, RequestsAreSignedAndPathStyleOnCustomEndpoints) {
  FakeHttpServer server([](const FakeRequest&) { return FakeResponse::Ok("payload"); });
  auto client = ClientFor(server.endpoint());
  auto got = client->GetObject({"bucket", "dir/a b+c.jpg"});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(Text(*got), "payload");
  const FakeRequest r = server.received().at(0);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/bucket/dir/a%20b%2Bc.jpg");
  EXPECT_EQ(r.Header("host"), "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(r.Header("x-amz-content-sha256"),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(r.Header("x-amz-date").size(), 16u);
  EXPECT_EQ(r.Header("authorization").rfind("AWS4-HMAC-SHA256 Credential=AKIDFAKEFAKEFAKE/", 0),
            0u);
  EXPECT_NE(r.Header("authorization").find("/us-east-1/s3/aws4_request"), std::string::npos);
  for (const auto& [name, value] : r.headers) EXPECT_EQ(value.find(kSecret), std::string::npos);
}

TEST(S3ClientRetryTest, SlowDownIsRetriedUntilSuccess) {
  FakeHttpServer server(FailThenServe(2, FakeResponse::S3Error(503, "SlowDown", "Reduce rate")));
  auto got = ClientFor(server.endpoint())->GetObject({"bucket", "k"});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(Text(*got), "payload");
  EXPECT_EQ(server.requests(), 3);
}

TEST(S3ClientRetryTest, GivesUpAfterMaxAttemptsNamingKeyCodeAndAttempts) {
  FakeHttpServer server(FailThenServe(100, FakeResponse::S3Error(500, "InternalError", "boom")));
  auto got = ClientFor(server.endpoint())->GetObject({"bucket", "some/key.jpg"});
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(server.requests(), 5);  // S3Options::max_attempts
  const Status& st = got.status();
  EXPECT_EQ(st.code(), StatusCode::kIOError);
  for (const char* part :
       {"s3://bucket/some/key.jpg", "HTTP 500", "InternalError", "boom", "5 attempts", "FAKE123"}) {
    EXPECT_NE(st.message().find(part), std::string::npos) << part << " in " << st.message();
  }
  ExpectNoSecret(st);
}

TEST(S3ClientRetryTest, MaxAttemptsIsConfigurable) {
  FakeHttpServer server(FailThenServe(100, FakeResponse::S3Error(503, "", "")));
  S3Options options;
  options.max_attempts = 2;
  auto got = ClientFor(server.endpoint(), options)->GetObject({"bucket", "k"});
  EXPECT_FALSE(got.ok());
  EXPECT_EQ(server.requests(), 2);
}

TEST(S3ClientRetryTest, ClientErrorsAreNotRetried) {
  {
    FakeHttpServer server(FailThenServe(100, FakeResponse::S3Error(403, "AccessDenied", "no")));
    auto got = ClientFor(server.endpoint())->GetObject({"bucket", "k"});
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(server.requests(), 1);
    EXPECT_EQ(got.status().code(), StatusCode::kIOError);
    EXPECT_NE(got.status().message().find("permission denied"), std::string::npos);
    EXPECT_NE(got.status().message().find("AKID...FAKE"), std::string::npos)
        << got.status().message();
    ExpectNoSecret(got.status());
  }
  {
    FakeHttpServer server(FailThenServe(100, FakeResponse::S3Error(404, "NoSuchKey", "gone")));
    auto got = ClientFor(server.endpoint())->GetObject({"bucket", "k"});
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(server.requests(), 1);
    EXPECT_EQ(got.status().code(), StatusCode::kNotFound);
  }
}

TEST(S3ClientRetryTest, TransportFailuresAreRetried) {
  for (A action : {A::kReset, A::kTruncate}) {
    FakeHttpServer server(FailThenServe(2, FakeResponse::Act(action)));
    auto got = ClientFor(server.endpoint())->GetObject({"bucket", "k"});
    ASSERT_TRUE(got.ok()) << static_cast<int>(action) << ": " << got.status().ToString();
    EXPECT_EQ(Text(*got), "payload");
    EXPECT_EQ(server.requests(), 3);
  }
}

TEST(S3ClientRetryTest, TruncatedBodyThatNeverCompletesIsReported) {
  FakeHttpServer server(FailThenServe(100, FakeResponse::Act(A::kTruncate)));
  S3Options options;
  options.max_attempts = 3;
  auto got = ClientFor(server.endpoint(), options)->GetObject({"bucket", "k"});
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(server.requests(), 3);
  EXPECT_NE(got.status().message().find("TruncatedBody"), std::string::npos)
      << got.status().message();
}

TEST(S3ClientRetryTest, StalledResponseTimesOutAndIsRetried) {
  FakeResponse stall = FakeResponse::Act(A::kStall);
  stall.stall_seconds = 5;
  FakeHttpServer server(FailThenServe(1, stall));
  S3Options options;
  options.request_timeout_s = 1;
  const auto start = std::chrono::steady_clock::now();
  auto got = ClientFor(server.endpoint(), options)->GetObject({"bucket", "k"});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
  EXPECT_EQ(server.requests(), 2);
}

TEST(S3ClientRetryTest, ConnectionRefusedIsRetriedThenReported) {
  int port;
  {
    FakeHttpServer server([](const FakeRequest&) { return FakeResponse::Ok(""); });
    port = server.port();
  }  // closed: nothing listens there now
  S3Options options;
  options.max_attempts = 3;
  auto got =
      ClientFor("http://127.0.0.1:" + std::to_string(port), options)->GetObject({"bucket", "k"});
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kIOError);
  EXPECT_NE(got.status().message().find("ConnectFailed"), std::string::npos)
      << got.status().message();
  EXPECT_NE(got.status().message().find("3 attempts"), std::string::npos);
}

TEST(S3ClientRetryTest, OversizedObjectIsRefusedWithoutRetry) {
  FakeHttpServer server([](const FakeRequest&) { return FakeResponse::Ok(std::string(100, 'x')); });
  S3Options options;
  options.max_object_bytes = 10;
  auto got = ClientFor(server.endpoint(), options)->GetObject({"bucket", "big"});
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(server.requests(), 1);
}

class CountingPolicy : public RetryPolicy {
 public:
  bool ShouldRetry(const S3Error& error, int attempt) const override {
    ++calls;
    last_code = error.code;
    return attempt < 2;
  }
  std::chrono::milliseconds DelayBeforeNextRetry(const S3Error&, int) const override {
    return milliseconds(0);
  }
  mutable std::atomic<int> calls{0};
  mutable std::string last_code;
};

TEST(S3ClientRetryTest, InjectedPolicyDecides) {
  FakeHttpServer server(FailThenServe(100, FakeResponse::S3Error(400, "WeirdCode", "x")));
  auto policy = std::make_shared<CountingPolicy>();
  S3Options options;
  options.retry = policy;
  auto got = ClientFor(server.endpoint(), options)->GetObject({"bucket", "k"});
  EXPECT_FALSE(got.ok());
  EXPECT_EQ(server.requests(), 2);  // a 400 retried because the policy said so
  EXPECT_EQ(policy->calls.load(), 2);
  EXPECT_EQ(policy->last_code, "WeirdCode");
}

// A tiny multipart-capable fake: enough of S3 to drive PutMultipart.
struct MultipartFake {
  std::atomic<int> complete_errors{0};  // CompleteMultipartUpload answers 200 + <Error> this often
  std::atomic<int> aborts{0};
  std::atomic<int> parts{0};
  std::atomic<bool> fail_parts{false};

  FakeResponse operator()(const FakeRequest& r) {
    const std::string q = r.Query();
    if (r.method == "POST" && q == "uploads") {
      return FakeResponse::Ok(
          "<InitiateMultipartUploadResult><UploadId>up-1</UploadId>"
          "</InitiateMultipartUploadResult>");
    }
    if (r.method == "PUT" && q.find("partNumber=") != std::string::npos) {
      if (fail_parts) return FakeResponse::S3Error(403, "AccessDenied", "no parts for you");
      ++parts;
      FakeResponse ok = FakeResponse::Ok("");
      ok.headers = {{"ETag", "\"etag-" + std::to_string(parts.load()) + "\""}};
      return ok;
    }
    if (r.method == "POST" && q == "uploadId=up-1") {
      if (complete_errors > 0) {
        --complete_errors;
        FakeResponse err = FakeResponse::S3Error(500, "InternalError", "try again");
        err.status = 200;  // S3 may report a failed completion inside a 200 response
        return err;
      }
      return FakeResponse::Ok(
          "<CompleteMultipartUploadResult><ETag>\"x-2\"</ETag>"
          "</CompleteMultipartUploadResult>");
    }
    if (r.method == "DELETE" && q == "uploadId=up-1") {
      ++aborts;
      FakeResponse gone;
      gone.status = 204;
      return gone;
    }
    return FakeResponse::S3Error(400, "Unexpected", r.method + " " + r.target);
  }
};

TEST(S3ClientRetryTest, CompleteMultipartErrorInsideA200IsRetried) {
  auto fake = std::make_shared<MultipartFake>();
  fake->complete_errors = 1;
  FakeHttpServer server([fake](const FakeRequest& r) { return (*fake)(r); });
  S3Options options;
  options.multipart_threshold = 1;  // a 100-byte body becomes a one-part multipart upload
  const Status st = ClientFor(server.endpoint(), options)
                        ->PutObject({"bucket", "out/result.npy"}, std::string(100, 'z'));
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(fake->parts.load(), 1);
  EXPECT_EQ(fake->aborts.load(), 0);
  // The completion body lists the part with its ETag (quotes need no escaping in text).
  bool saw_complete = false;
  for (const FakeRequest& r : server.received()) {
    if (r.method == "POST" && r.Query() == "uploadId=up-1") {
      saw_complete = true;
      EXPECT_NE(r.body.find("<Part><PartNumber>1</PartNumber><ETag>\"etag-1\"</ETag></Part>"),
                std::string::npos)
          << r.body;
    }
  }
  EXPECT_TRUE(saw_complete);
}

TEST(S3ClientRetryTest, FailedMultipartUploadIsAborted) {
  auto fake = std::make_shared<MultipartFake>();
  fake->fail_parts = true;
  FakeHttpServer server([fake](const FakeRequest& r) { return (*fake)(r); });
  S3Options options;
  options.multipart_threshold = 1;
  const Status st =
      ClientFor(server.endpoint(), options)->PutObject({"bucket", "out/x"}, std::string(10, 'z'));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kIOError);
  EXPECT_NE(st.message().find("UploadPart"), std::string::npos) << st.message();
  EXPECT_EQ(fake->aborts.load(), 1);

  fake->fail_parts = false;
  fake->complete_errors = 100;  // completion never succeeds: abort too
  const Status st2 =
      ClientFor(server.endpoint(), options)->PutObject({"bucket", "out/x"}, std::string(10, 'z'));
  ASSERT_FALSE(st2.ok());
  EXPECT_NE(st2.message().find("CompleteMultipartUpload"), std::string::npos) << st2.message();
  EXPECT_EQ(fake->aborts.load(), 2);
}

TEST(S3ClientRetryTest, InjectedFaultsGoThroughThePolicy) {
  FakeHttpServer server([](const FakeRequest&) { return FakeResponse::Ok("payload"); });
  auto client = ClientFor(server.endpoint());
  client->impl()->fault_injector = [](const s3internal::S3Request&,
                                      int attempt) -> std::optional<S3Error> {
    if (attempt <= 3) return Transport(S3Error::Transport::kReset);
    return std::nullopt;
  };
  auto got = client->GetObject({"bucket", "k"});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(server.requests(), 1);
}

}  // namespace
}  // namespace orchard
