#include "orchard/s3_credentials.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "storage/s3_http.h"
#include "storage/s3_internal.h"

namespace orchard {

using s3internal::GetEnv;

std::string AwsCredentials::Redacted() const {
  std::string id = access_key_id;
  if (id.size() > 8) {
    id = id.substr(0, 4) + "..." + id.substr(id.size() - 4);  // "AKIA...MPLE"
  } else {
    id = "****";
  }
  std::string out = "access key " + id;
  if (!source.empty()) out += " from " + source;
  if (!session_token.empty()) out += ", with session token";
  return out;
}

namespace s3internal {

std::string GetEnv(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

std::string ProfileName() {
  std::string p = GetEnv("AWS_PROFILE");
  if (p.empty()) p = GetEnv("AWS_DEFAULT_PROFILE");
  return p.empty() ? "default" : p;
}

namespace {

std::string HomeDir() {
  std::string home = GetEnv("HOME");
  if (!home.empty()) return home;
  struct passwd pw;
  struct passwd* result = nullptr;
  char buf[4096];
  if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &result) == 0 && result != nullptr) {
    return result->pw_dir;
  }
  return "";
}

std::string ExpandHome(const std::string& path) {
  if (path.size() >= 1 && path[0] == '~' && (path.size() == 1 || path[1] == '/')) {
    return HomeDir() + path.substr(1);
  }
  return path;
}

std::string Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::string SharedCredentialsFile() {
  const std::string env = GetEnv("AWS_SHARED_CREDENTIALS_FILE");
  return ExpandHome(env.empty() ? "~/.aws/credentials" : env);
}

std::string SharedConfigFile() {
  const std::string env = GetEnv("AWS_CONFIG_FILE");
  return ExpandHome(env.empty() ? "~/.aws/config" : env);
}

IniFile ReadIniFile(const std::string& path) {
  IniFile out;
  std::ifstream in(path);
  if (!in) return out;
  std::string line;
  std::map<std::string, std::string>* section = nullptr;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    // Indented lines continue a nested setting ("s3 =\n  addressing_style = path").
    if (line[0] == ' ' || line[0] == '\t') continue;
    const std::string t = Trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[') {
      const size_t close = t.find(']');
      if (close == std::string::npos) {
        section = nullptr;
        continue;
      }
      // "[ profile  name ]" -> "profile name"
      std::string name = Trim(t.substr(1, close - 1));
      std::string collapsed;
      for (char c : name) {
        if (std::isspace(static_cast<unsigned char>(c))) {
          if (!collapsed.empty() && collapsed.back() != ' ') collapsed.push_back(' ');
        } else {
          collapsed.push_back(c);
        }
      }
      section = &out[collapsed];
      continue;
    }
    if (section == nullptr) continue;
    const size_t eq = t.find('=');
    if (eq == std::string::npos) continue;
    (*section)[Lower(Trim(t.substr(0, eq)))] = Trim(t.substr(eq + 1));
  }
  return out;
}

const std::map<std::string, std::string>* ConfigProfile(const IniFile& config,
                                                        const std::string& profile) {
  auto it = config.find("profile " + profile);
  if (it != config.end()) return &it->second;
  if (profile == "default") {
    it = config.find("default");
    if (it != config.end()) return &it->second;
  }
  return nullptr;
}

std::optional<std::chrono::system_clock::time_point> ParseIso8601(std::string_view text) {
  int year, month, day, hour, minute, second;
  const std::string s(text);
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &year, &month, &day, &hour, &minute,
                  &second) != 6) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  const std::time_t t = timegm(&tm);
  if (t == static_cast<std::time_t>(-1)) return std::nullopt;
  return std::chrono::system_clock::from_time_t(t);
}

}  // namespace s3internal

namespace {

using s3internal::HttpClient;
using s3internal::HttpClientOptions;
using s3internal::HttpOutcome;
using s3internal::HttpRequest;
using Clock = std::chrono::system_clock;

class StaticProvider : public CredentialsProvider {
 public:
  explicit StaticProvider(AwsCredentials c) : credentials_(std::move(c)) {
    if (credentials_.source.empty()) credentials_.source = "static credentials";
  }
  Result<AwsCredentials> Get() override { return credentials_; }

 private:
  AwsCredentials credentials_;
};

class EnvironmentProvider : public CredentialsProvider {
 public:
  Result<AwsCredentials> Get() override {
    AwsCredentials c;
    c.access_key_id = GetEnv("AWS_ACCESS_KEY_ID");
    c.secret_access_key = GetEnv("AWS_SECRET_ACCESS_KEY");
    c.session_token = GetEnv("AWS_SESSION_TOKEN");
    c.source = "environment";
    if (c.access_key_id.empty() && c.secret_access_key.empty()) {
      return Status::NotFound("AWS_ACCESS_KEY_ID is not set");
    }
    if (c.access_key_id.empty()) {
      return Status::InvalidArgument("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
    }
    if (c.secret_access_key.empty()) {
      return Status::InvalidArgument("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
    }
    return c;
  }
};

class ProfileProvider : public CredentialsProvider {
 public:
  explicit ProfileProvider(std::string profile) : profile_(std::move(profile)) {}

  Result<AwsCredentials> Get() override {
    const bool explicit_profile = !profile_.empty() || !GetEnv("AWS_PROFILE").empty() ||
                                  !GetEnv("AWS_DEFAULT_PROFILE").empty();
    const std::string profile = profile_.empty() ? s3internal::ProfileName() : profile_;
    const std::string credentials_path = s3internal::SharedCredentialsFile();
    const std::string config_path = s3internal::SharedConfigFile();
    const s3internal::IniFile credentials_file = s3internal::ReadIniFile(credentials_path);
    const s3internal::IniFile config_file = s3internal::ReadIniFile(config_path);

    const std::map<std::string, std::string>* from_credentials = nullptr;
    if (auto it = credentials_file.find(profile); it != credentials_file.end()) {
      from_credentials = &it->second;
    }
    const auto* from_config = s3internal::ConfigProfile(config_file, profile);

    // The credentials file wins over the config file, as in the AWS CLI.
    for (const auto& [section, path] :
         {std::pair{from_credentials, credentials_path}, std::pair{from_config, config_path}}) {
      if (section == nullptr) continue;
      auto value = [&](const char* key) {
        auto it = section->find(key);
        return it == section->end() ? std::string() : it->second;
      };
      AwsCredentials c;
      c.access_key_id = value("aws_access_key_id");
      c.secret_access_key = value("aws_secret_access_key");
      c.session_token = value("aws_session_token");
      if (c.session_token.empty()) c.session_token = value("aws_security_token");
      if (c.access_key_id.empty() && c.secret_access_key.empty()) continue;
      if (c.access_key_id.empty() || c.secret_access_key.empty()) {
        return Status::InvalidArgument(
            "profile '" + profile + "' in " + path + " has " +
            (c.access_key_id.empty() ? "aws_secret_access_key" : "aws_access_key_id") +
            " but not the other half of the key");
      }
      c.source = "shared file " + path + ", profile " + profile;
      return c;
    }
    if (from_config != nullptr) {
      for (const char* key : {"role_arn", "credential_process", "sso_session", "sso_start_url",
                              "web_identity_token_file"}) {
        if (from_config->count(key) != 0) {
          return Status::Unsupported(
              "profile '" + profile + "' in " + config_path + " uses " + key +
              ", which Orchard does not support; export plain keys instead, e.g. "
              "eval \"$(aws configure export-credentials --profile " +
              profile + " --format env)\"");
        }
      }
    }
    if (explicit_profile && from_credentials == nullptr && from_config == nullptr) {
      return Status::InvalidArgument("AWS profile '" + profile + "' is in neither " +
                                     credentials_path + " nor " + config_path);
    }
    return Status::NotFound("no keys for profile '" + profile + "' in " + credentials_path +
                            " or " + config_path);
  }

 private:
  std::string profile_;
};

// Caches fetched temporary credentials and refreshes them before they expire.
class RefreshingProvider : public CredentialsProvider {
 public:
  Result<AwsCredentials> Get() override {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = Clock::now();
    if (cached_.has_value() &&
        (!cached_->expiration.has_value() || *cached_->expiration - now > kRefreshMargin)) {
      return *cached_;
    }
    Result<AwsCredentials> fresh = Fetch();
    if (fresh.ok()) {
      cached_ = *fresh;
      return fresh;
    }
    // Keep using credentials that still work when a refresh fails.
    if (cached_.has_value() && cached_->expiration.has_value() && *cached_->expiration > now) {
      return *cached_;
    }
    return fresh.status();
  }

 protected:
  static constexpr std::chrono::minutes kRefreshMargin{5};
  virtual Result<AwsCredentials> Fetch() = 0;

  HttpClient& http() {
    if (!http_) {
      HttpClientOptions o;
      o.max_connections = 1;
      o.connect_timeout_s = 1;
      o.low_speed_time_s = 5;
      http_ = std::make_unique<HttpClient>(o);
    }
    return *http_;
  }

  // Parses the JSON both IMDS and the container endpoint return.
  static Result<AwsCredentials> ParseCredentialsJson(std::string_view text,
                                                     const std::string& source) {
    const auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded() || !json.is_object()) {
      return Status::CorruptData(source + " returned something that is not JSON");
    }
    auto str = [&](const char* key) {
      auto it = json.find(key);
      return it != json.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    const std::string code = str("Code");
    if (!code.empty() && code != "Success") {
      return Status::IOError(source + " answered Code=" + code + ": " + str("Message"));
    }
    AwsCredentials c;
    c.access_key_id = str("AccessKeyId");
    c.secret_access_key = str("SecretAccessKey");
    c.session_token = str("Token");
    c.source = source;
    if (c.access_key_id.empty() || c.secret_access_key.empty()) {
      return Status::CorruptData(source + " returned no AccessKeyId/SecretAccessKey");
    }
    const std::string expiration = str("Expiration");
    if (!expiration.empty()) {
      c.expiration = s3internal::ParseIso8601(expiration);
      if (!c.expiration.has_value()) {
        return Status::CorruptData(source + " returned an unreadable Expiration");
      }
    }
    return c;
  }

 private:
  std::mutex mu_;
  std::optional<AwsCredentials> cached_;
  std::unique_ptr<HttpClient> http_;
};

double EnvSeconds(const char* name, double fallback) {
  const std::string v = GetEnv(name);
  if (v.empty()) return fallback;
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  return (end != v.c_str() && d > 0) ? d : fallback;
}

class InstanceMetadataProvider : public RefreshingProvider {
 protected:
  Result<AwsCredentials> Fetch() override {
    std::string endpoint = GetEnv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (endpoint.empty()) {
      endpoint = GetEnv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE") == "IPv6"
                     ? "http://[fd00:ec2::254]"
                     : "http://169.254.169.254";
    }
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    const double timeout = EnvSeconds("AWS_METADATA_SERVICE_TIMEOUT", 1);
    const int attempts =
        std::max(1, static_cast<int>(EnvSeconds("AWS_METADATA_SERVICE_NUM_ATTEMPTS", 1)));

    auto call = [&](const std::string& method, const std::string& path,
                    const sigv4::Pairs& headers) {
      HttpRequest r;
      r.method = method;
      r.url = endpoint + path;
      r.headers = headers;
      r.connect_timeout_s = timeout;
      r.total_timeout_s = timeout * 2;
      r.max_response_bytes = 1 << 20;
      r.no_proxy = true;
      HttpOutcome out;
      for (int i = 0; i < attempts; ++i) {
        out = http().Perform(r);
        if (out.ok && out.response.status < 500) break;
      }
      return out;
    };
    const std::string where = "instance metadata service at " + endpoint;

    // IMDSv2: a session token first. 403/404/405 mean IMDSv1 only (or v2 disabled).
    std::string token;
    HttpOutcome out =
        call("PUT", "/latest/api/token", {{"X-aws-ec2-metadata-token-ttl-seconds", "21600"}});
    if (!out.ok) {
      return Status::NotFound("no " + where + " (" + out.error.ToString() + ")");
    }
    if (out.response.status == 200) {
      token = std::string(out.response.BodyText());
    } else if (out.response.status != 403 && out.response.status != 404 &&
               out.response.status != 405) {
      return Status::IOError(where + " refused a token: HTTP " +
                             std::to_string(out.response.status));
    }
    sigv4::Pairs auth;
    if (!token.empty()) auth.emplace_back("X-aws-ec2-metadata-token", token);

    out = call("GET", "/latest/meta-data/iam/security-credentials/", auth);
    if (!out.ok) return Status::IOError(where + ": " + out.error.ToString());
    if (out.response.status == 404) {
      return Status::NotFound(where + ": this instance has no IAM role");
    }
    if (out.response.status != 200) {
      return Status::IOError(where + ": listing roles answered HTTP " +
                             std::to_string(out.response.status));
    }
    std::string role(out.response.BodyText());
    role = role.substr(0, role.find('\n'));
    while (!role.empty() && std::isspace(static_cast<unsigned char>(role.back()))) role.pop_back();
    if (role.empty()) return Status::NotFound(where + ": this instance has no IAM role");

    out = call("GET", "/latest/meta-data/iam/security-credentials/" + role, auth);
    if (!out.ok) return Status::IOError(where + ": " + out.error.ToString());
    if (out.response.status != 200) {
      return Status::IOError(where + ": credentials of role " + role + " answered HTTP " +
                             std::to_string(out.response.status));
    }
    return ParseCredentialsJson(out.response.BodyText(), "instance metadata (role " + role + ")");
  }
};

class ContainerProvider : public RefreshingProvider {
 protected:
  Result<AwsCredentials> Fetch() override {
    std::string url = GetEnv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    const std::string relative = GetEnv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    if (!relative.empty()) url = "http://169.254.170.2" + relative;
    if (url.empty()) {
      return Status::NotFound("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is not set");
    }
    HttpRequest r;
    r.url = url;
    r.connect_timeout_s = 2;
    r.total_timeout_s = 5;
    r.max_response_bytes = 1 << 20;
    r.no_proxy = true;
    std::string token = GetEnv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    const std::string token_file = GetEnv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    if (token.empty() && !token_file.empty()) {
      std::ifstream in(token_file);
      std::stringstream ss;
      ss << in.rdbuf();
      token = ss.str();
      while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) {
        token.pop_back();
      }
    }
    if (!token.empty()) r.headers.emplace_back("Authorization", token);
    const HttpOutcome out = http().Perform(r);
    if (!out.ok) {
      return Status::IOError("container credentials endpoint: " + out.error.ToString());
    }
    if (out.response.status != 200) {
      return Status::IOError("container credentials endpoint answered HTTP " +
                             std::to_string(out.response.status));
    }
    return ParseCredentialsJson(out.response.BodyText(), "container credentials endpoint");
  }
};

class DefaultChain : public CredentialsProvider {
 public:
  Result<AwsCredentials> Get() override {
    std::shared_ptr<CredentialsProvider> chosen;
    {
      std::lock_guard<std::mutex> lock(mu_);
      chosen = chosen_;
    }
    if (chosen) return chosen->Get();

    std::lock_guard<std::mutex> lock(resolve_mu_);
    std::vector<std::shared_ptr<CredentialsProvider>> providers = {env_, profile_};
    const bool container = !GetEnv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").empty() ||
                           !GetEnv("AWS_CONTAINER_CREDENTIALS_FULL_URI").empty();
    if (container) providers.push_back(container_);
    const std::string disabled = GetEnv("AWS_EC2_METADATA_DISABLED");
    const bool imds = disabled != "true" && disabled != "TRUE" && disabled != "True";
    if (imds) providers.push_back(imds_);

    std::string reasons;
    for (const auto& provider : providers) {
      Result<AwsCredentials> r = provider->Get();
      if (r.ok()) {
        std::lock_guard<std::mutex> inner(mu_);
        chosen_ = provider;
        return r;
      }
      // A broken setup (half a key, a profile that does not exist) is reported as such
      // rather than silently falling through to another identity.
      const bool configuration_error =
          (provider == env_ || provider == profile_) && r.status().code() != StatusCode::kNotFound;
      if (configuration_error) return r.status();
      if (provider == imds_ || provider == container_) {
        reasons += "; " + r.status().message();
      }
    }
    if (!imds) reasons += "; instance metadata disabled by AWS_EC2_METADATA_DISABLED";
    return Status::NotFound(
        "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and "
        "AWS_SESSION_TOKEN for temporary keys), or ~/.aws/credentials (profile " +
        s3internal::ProfileName() + "), or run on an instance with a role" + reasons);
  }

 private:
  std::shared_ptr<CredentialsProvider> env_ = MakeEnvironmentCredentialsProvider();
  std::shared_ptr<CredentialsProvider> profile_ = MakeProfileCredentialsProvider();
  std::shared_ptr<CredentialsProvider> container_ = MakeContainerCredentialsProvider();
  std::shared_ptr<CredentialsProvider> imds_ = MakeInstanceMetadataCredentialsProvider();
  std::mutex mu_;
  std::mutex resolve_mu_;
  std::shared_ptr<CredentialsProvider> chosen_;
};

}  // namespace

std::shared_ptr<CredentialsProvider> MakeStaticCredentialsProvider(AwsCredentials credentials) {
  return std::make_shared<StaticProvider>(std::move(credentials));
}
std::shared_ptr<CredentialsProvider> MakeEnvironmentCredentialsProvider() {
  return std::make_shared<EnvironmentProvider>();
}
std::shared_ptr<CredentialsProvider> MakeProfileCredentialsProvider(std::string profile) {
  return std::make_shared<ProfileProvider>(std::move(profile));
}
std::shared_ptr<CredentialsProvider> MakeInstanceMetadataCredentialsProvider() {
  return std::make_shared<InstanceMetadataProvider>();
}
std::shared_ptr<CredentialsProvider> MakeContainerCredentialsProvider() {
  return std::make_shared<ContainerProvider>();
}
std::shared_ptr<CredentialsProvider> MakeDefaultCredentialsChain() {
  return std::make_shared<DefaultChain>();
}

}  // namespace orchard
