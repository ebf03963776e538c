// Where the HTTP client finds CA certificates: the choice as a pure function over an
// injected file system, and its use by S3Client::Make.
#include "storage/s3_http.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "orchard/s3.h"
#include "storage/s3_test_util.h"

namespace orchard::s3internal {
namespace {

// A file system that holds exactly `paths`.
std::function<bool(const std::string&)> Holding(std::set<std::string> paths) {
  return [paths = std::move(paths)](const std::string& p) { return paths.count(p) != 0; };
}

constexpr char kDebian[] = "/etc/ssl/certs/ca-certificates.crt";
constexpr char kRedHat[] = "/etc/pki/tls/certs/ca-bundle.crt";
constexpr char kRedHatTrust[] = "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem";
constexpr char kSuse[] = "/etc/ssl/ca-bundle.pem";
constexpr char kAlpine[] = "/etc/ssl/cert.pem";

TEST(CaCertificatesTest, TheSystemBundlesInOrder) {
  EXPECT_EQ(SystemCaBundleFiles(),
            (std::vector<std::string>{kDebian, kRedHat, kRedHatTrust, kSuse, kAlpine}));
  const auto& files = SystemCaBundleFiles();
  auto choose = [&](std::set<std::string> present) {
    auto c = ChooseCaCertificates("", "", "", files, Holding(std::move(present)));
    EXPECT_TRUE(c.ok());
    EXPECT_EQ(c->dir, "");
    return c->file;
  };
  EXPECT_EQ(choose({kDebian, kRedHat, kAlpine}), kDebian);       // Debian, Ubuntu
  EXPECT_EQ(choose({kRedHat, kRedHatTrust, kAlpine}), kRedHat);  // Amazon Linux 2, RHEL
  EXPECT_EQ(choose({kRedHatTrust}), kRedHatTrust);               // a minimal RHEL-family image
  EXPECT_EQ(choose({kSuse, kAlpine}), kSuse);
  EXPECT_EQ(choose({kAlpine}), kAlpine);
  EXPECT_EQ(choose({}), "");  // none: libcurl's built-in default
}

TEST(CaCertificatesTest, EnvironmentComesFirst) {
  const auto& files = SystemCaBundleFiles();
  const auto all = Holding({kDebian, "/corp/ca.pem", "/ssl/file.pem", "/ssl/dir"});
  // AWS_CA_BUNDLE beats everything.
  auto c = ChooseCaCertificates("/corp/ca.pem", "/ssl/file.pem", "/ssl/dir", files, all);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->file, "/corp/ca.pem");
  EXPECT_EQ(c->dir, "");
  // Then SSL_CERT_FILE.
  c = ChooseCaCertificates("", "/ssl/file.pem", "/ssl/dir", files, all);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->file, "/ssl/file.pem");
  EXPECT_EQ(c->dir, "");
  // Then SSL_CERT_DIR, as a folder (CURLOPT_CAPATH).
  c = ChooseCaCertificates("", "", "/ssl/dir", files, all);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->file, "");
  EXPECT_EQ(c->dir, "/ssl/dir");
  // OpenSSL's variables naming nothing are passed over.
  c = ChooseCaCertificates("", "/missing.pem", "/missing-dir", files, all);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->file, kDebian);
  EXPECT_EQ(c->dir, "");
}

TEST(CaCertificatesTest, AMissingAwsCaBundleIsAnError) {
  const auto c = ChooseCaCertificates("/corp/missing.pem", "/ssl/file.pem", "",
                                      SystemCaBundleFiles(), Holding({kDebian, "/ssl/file.pem"}));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("the CA bundle '/corp/missing.pem' (AWS_CA_BUNDLE) does "
                                      "not exist"),
            std::string::npos)
      << c.status().message();
}

TEST(CaCertificatesTest, FromTheEnvironmentAndInTheClient) {
  testing::ScopedAwsEnv env;
  const std::string here = (env.home() / "ca.pem").string();
  std::ofstream(here) << "not really a certificate\n";
  env.Set("SSL_CERT_FILE", here);
  auto c = CaCertificatesFromEnvironment("");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->file, here);
  env.Set("AWS_CA_BUNDLE", (env.home() / "missing.pem").string());
  EXPECT_EQ(CaCertificatesFromEnvironment("").status().code(), StatusCode::kInvalidArgument);
  c = CaCertificatesFromEnvironment(here);  // S3Options::ca_bundle wins over the variable
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->file, here);

  // S3Client::Make refuses a CA bundle that is not there, before any request.
  auto options = S3OptionsFromEnvironment();
  ASSERT_TRUE(options.ok());
  AwsCredentials k;
  k.access_key_id = "AKIDCACACACA";
  k.secret_access_key = "secret";
  options->credentials = MakeStaticCredentialsProvider(k);
  const auto client = S3Client::Make(*options);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(client.status().message().find("missing.pem"), std::string::npos);
}

}  // namespace
}  // namespace orchard::s3internal
