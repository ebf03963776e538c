// AWS credentials for the S3 client, and where they come from.
//
// Secrets never leave this module in readable form: AwsCredentials has no operator<< and no
// ToString(); code that logs or reports an identity uses Redacted(), which shows only the
// first and last four characters of the access key id and the source.
//
// Every CredentialsProvider is safe for concurrent Get() calls. Providers that fetch
// temporary credentials (instance metadata, containers) cache them and refresh them before
// they expire, so calling Get() before every request is cheap.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "orchard/status.h"

namespace orchard {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;  // never printed
  std::string session_token;      // empty for long-term keys; never printed
  // When temporary credentials stop working; empty for keys that do not expire.
  std::optional<std::chrono::system_clock::time_point> expiration;
  // Where they came from, for messages: "environment", "shared credentials file
  // /root/.aws/credentials, profile default", "instance metadata (role r)"...
  std::string source;

  // "access key AKIA...MPLE from environment" (with ", session token" when there is one).
  std::string Redacted() const;
};

class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  // Returns valid credentials or a Status explaining why there are none. Thread-safe.
  virtual Result<AwsCredentials> Get() = 0;
};

// Always returns `credentials`.
std::shared_ptr<CredentialsProvider> MakeStaticCredentialsProvider(AwsCredentials credentials);

// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and optionally AWS_SESSION_TOKEN, read on every
// Get(). kNotFound when AWS_ACCESS_KEY_ID is unset; kInvalidArgument when only one of the
// key id and the secret is set.
std::shared_ptr<CredentialsProvider> MakeEnvironmentCredentialsProvider();

// The shared files, as the AWS CLI reads them: `aws_access_key_id`,
// `aws_secret_access_key` and `aws_session_token` of the profile in
// $AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials, sections "[name]"), then in
// $AWS_CONFIG_FILE (default ~/.aws/config, sections "[profile name]" or "[default]").
// `profile` "" means $AWS_PROFILE, else "default". A profile with `role_arn` (and
// `source_profile` or `credential_source`) is assumed through STS AssumeRole, signed with
// the source's keys (docs/s3.md). kNotFound when the profile has no keys; kUnsupported,
// naming the key, for MFA, SSO, web-identity and credential_process profiles.
std::shared_ptr<CredentialsProvider> MakeProfileCredentialsProvider(std::string profile = "");

// The instance role of an EC2/EMR host through IMDSv2: PUT /latest/api/token, then
// GET /latest/meta-data/iam/security-credentials/ and .../<role>, with the token header.
// Falls back to IMDSv1 only when the token request is answered 403/404/405. The endpoint
// is $AWS_EC2_METADATA_SERVICE_ENDPOINT (tests point it at a local fake), else
// http://169.254.169.254 (or http://[fd00:ec2::254] when
// $AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE is IPv6). Each call times out after
// $AWS_METADATA_SERVICE_TIMEOUT seconds (default 1) and is tried
// $AWS_METADATA_SERVICE_NUM_ATTEMPTS times (default 1). Credentials are cached and
// refreshed 5 minutes before they expire; if a refresh fails while the cached ones are
// still valid, those are returned.
std::shared_ptr<CredentialsProvider> MakeInstanceMetadataCredentialsProvider();

// ECS/EKS container credentials: $AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (relative to
// http://169.254.170.2) or $AWS_CONTAINER_CREDENTIALS_FULL_URI, with
// $AWS_CONTAINER_AUTHORIZATION_TOKEN as the Authorization header when set. Cached like the
// instance metadata provider. kNotFound when neither variable is set.
std::shared_ptr<CredentialsProvider> MakeContainerCredentialsProvider();

// The AWS CLI's order: environment, shared files, container, then the instance role
// (skipped when $AWS_EC2_METADATA_DISABLED is "true"). The first source that has
// credentials is remembered and used from then on. When none has any, Get() returns
// kNotFound: "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or
// ~/.aws/credentials, or run on an instance with a role (...)".
std::shared_ptr<CredentialsProvider> MakeDefaultCredentialsChain();

}  // namespace orchard
