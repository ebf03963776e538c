// s3:// URLs, options from the environment, and what an S3 Storage names its keys.
#include <gtest/gtest.h>

#include "orchard/s3.h"
#include "storage/s3_test_util.h"

namespace orchard {
namespace {

using testing::ScopedAwsEnv;

TEST(S3UrlTest, ParsesBucketAndKey) {
  auto u = ParseS3Url("s3://my-bucket/fruits/Apple Red/1.jpg");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->bucket, "my-bucket");
  EXPECT_EQ(u->key, "fruits/Apple Red/1.jpg");
  EXPECT_EQ(u->ToString(), "s3://my-bucket/fruits/Apple Red/1.jpg");
}

TEST(S3UrlTest, KeyIsVerbatimAndMayBeEmpty) {
  EXPECT_EQ(ParseS3Url("s3://bucket")->key, "");
  EXPECT_EQ(ParseS3Url("s3://bucket/")->key, "");
  EXPECT_EQ(ParseS3Url("s3://bucket/a%20b+c//d/./e?x#y")->key, "a%20b+c//d/./e?x#y");
  EXPECT_EQ(ParseS3Url("s3://bucket/\xC3\xBC/")->key, "\xC3\xBC/");
}

TEST(S3UrlTest, AcceptsHadoopSchemesAndAnyCase) {
  EXPECT_TRUE(IsS3Url("s3://b/k"));
  EXPECT_TRUE(IsS3Url("s3a://b/k"));
  EXPECT_TRUE(IsS3Url("S3N://b/k"));
  EXPECT_EQ(ParseS3Url("s3a://data.example.com/x")->bucket, "data.example.com");
  EXPECT_FALSE(IsS3Url("/data/s3://x"));
  EXPECT_FALSE(IsS3Url("s3:/b/k"));
  EXPECT_FALSE(IsS3Url("gs://b/k"));
  EXPECT_FALSE(IsS3Url(""));
}

TEST(S3UrlTest, RejectsWhatCannotBeABucket) {
  for (const char* bad :
       {"s3://", "s3:///key", "s3://ab/key", "s3://-bucket/k", "s3://bucket-/k", "s3://.bucket/k",
        "s3://buck et/k", "s3://buck%et/k", "/local/path", "http://bucket/key"}) {
    auto u = ParseS3Url(bad);
    EXPECT_FALSE(u.ok()) << bad;
    if (!u.ok()) {
      EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument) << bad;
    }
  }
  // Legacy us-east-1 names with upper case or '_' are still accepted.
  EXPECT_TRUE(ParseS3Url("s3://Legacy_Bucket/k").ok());
}

TEST(S3OptionsTest, FromEnvironmentDefaults) {
  ScopedAwsEnv env;
  auto o = S3OptionsFromEnvironment();
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->endpoint, "");
  EXPECT_EQ(o->region, "us-east-1");
  EXPECT_EQ(o->addressing, S3Options::Addressing::kAuto);
  EXPECT_EQ(o->max_attempts, 5);
  EXPECT_EQ(o->credentials, nullptr);
}

TEST(S3OptionsTest, EndpointAndRegionPrecedence) {
  ScopedAwsEnv env;
  env.Set("AWS_ENDPOINT_URL", "http://generic:1");
  EXPECT_EQ(S3OptionsFromEnvironment()->endpoint, "http://generic:1");
  env.Set("AWS_ENDPOINT_URL_S3", "http://s3-specific:2");
  EXPECT_EQ(S3OptionsFromEnvironment()->endpoint, "http://s3-specific:2");

  const auto config = env.home() / "config";
  testing::WriteFileBytes(config, {});
  {
    std::ofstream out(config);
    out << "[default]\nregion = eu-west-1\n[profile other]\nregion=ap-south-1\n";
  }
  env.Set("AWS_CONFIG_FILE", config.string());
  EXPECT_EQ(S3OptionsFromEnvironment()->region, "eu-west-1");
  env.Set("AWS_PROFILE", "other");
  EXPECT_EQ(S3OptionsFromEnvironment()->region, "ap-south-1");
  env.Set("AWS_DEFAULT_REGION", "us-west-2");
  EXPECT_EQ(S3OptionsFromEnvironment()->region, "us-west-2");
  env.Set("AWS_REGION", "eu-central-1");
  EXPECT_EQ(S3OptionsFromEnvironment()->region, "eu-central-1");
}

TEST(S3OptionsTest, RejectsEndpointWithoutScheme) {
  ScopedAwsEnv env;
  env.Set("AWS_ENDPOINT_URL", "127.0.0.1:8333");
  auto o = S3OptionsFromEnvironment();
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), StatusCode::kInvalidArgument);

  S3Options options;
  options.endpoint = "ftp://x";
  options.credentials = MakeStaticCredentialsProvider({"AKIDEXAMPLE", "secret", "", {}, ""});
  EXPECT_EQ(S3Client::Make(options).status().code(), StatusCode::kInvalidArgument);
}

TEST(S3StorageNamingTest, PrefixIsAFolderAndDescribeIsTheFullUrl) {
  S3Options options;
  options.endpoint = "http://127.0.0.1:9";  // never contacted
  options.credentials = MakeStaticCredentialsProvider({"AKIDEXAMPLE", "secret", "", {}, ""});
  for (const char* url : {"s3://bucket/fruits", "s3://bucket/fruits/"}) {
    auto storage = OpenS3Storage(url, options);
    ASSERT_TRUE(storage.ok()) << storage.status().ToString();
    EXPECT_EQ((*storage)->Describe("Apple/1.jpg"), "s3://bucket/fruits/Apple/1.jpg") << url;
  }
  auto root = OpenS3Storage("s3://bucket", options);
  ASSERT_TRUE(root.ok());
  EXPECT_EQ((*root)->Describe("a b.jpg"), "s3://bucket/a b.jpg");
  EXPECT_EQ(OpenS3Storage("not-s3", options).status().code(), StatusCode::kInvalidArgument);
}

TEST(S3StorageNamingTest, MissingCredentialsFailAtOpenWithTheChainMessage) {
  ScopedAwsEnv env;  // no keys, no files, instance metadata disabled
  S3Options options;
  options.endpoint = "http://127.0.0.1:9";
  auto storage = OpenS3Storage("s3://bucket/x", options);
  ASSERT_FALSE(storage.ok());
  EXPECT_EQ(storage.status().code(), StatusCode::kNotFound);
  EXPECT_NE(storage.status().message().find("no AWS credentials found"), std::string::npos)
      << storage.status().message();
}

}  // namespace
}  // namespace orchard
