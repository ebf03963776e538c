#include "orchard/s3_credentials.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
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

IniFile ParseIni(std::string_view text) {
  IniFile out;
  std::map<std::string, std::string>* section = nullptr;
  while (!text.empty()) {
    const size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
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
      std::string name = Trim(std::string_view(t).substr(1, close - 1));
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
    (*section)[Lower(Trim(std::string_view(t).substr(0, eq)))] =
        Trim(std::string_view(t).substr(eq + 1));
  }
  return out;
}

IniFile ReadIniFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::stringstream text;
  text << in.rdbuf();
  return ParseIni(text.str());
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

std::string RedactSecrets(std::string text, const AwsCredentials& credentials) {
  for (const std::string* secret : {&credentials.secret_access_key, &credentials.session_token}) {
    // Very short "secrets" (tests, placeholders) would redact ordinary words.
    if (secret->size() < 8) continue;
    for (size_t at = text.find(*secret); at != std::string::npos;
         at = text.find(*secret, at + 10)) {
      text.replace(at, secret->size(), "[redacted]");
    }
  }
  return text;
}

namespace {

// Reads exactly `digits` decimal digits of `text` at `*at` into `*value`.
bool ReadDigits(std::string_view text, size_t* at, int digits, int* value) {
  if (text.size() - *at < static_cast<size_t>(digits)) return false;
  int v = 0;
  for (int i = 0; i < digits; ++i) {
    const char c = text[*at + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *at += digits;
  *value = v;
  return true;
}

bool ReadChar(std::string_view text, size_t* at, char c) {
  if (*at >= text.size() || text[*at] != c) return false;
  ++*at;
  return true;
}

}  // namespace

std::optional<std::chrono::system_clock::time_point> ParseIso8601(std::string_view text) {
  using std::chrono::system_clock;
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  // Fixed-width fields only (sscanf's %d took signs, spaces and "60-1-0"), each in range:
  // a value the calendar does not have is refused rather than normalised to another date.
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  size_t at = 0;
  if (!ReadDigits(text, &at, 4, &year) || !ReadChar(text, &at, '-') ||
      !ReadDigits(text, &at, 2, &month) || !ReadChar(text, &at, '-') ||
      !ReadDigits(text, &at, 2, &day)) {
    return std::nullopt;
  }
  if (at >= text.size() || (text[at] != 'T' && text[at] != 't' && text[at] != ' ')) {
    return std::nullopt;
  }
  ++at;
  if (!ReadDigits(text, &at, 2, &hour) || !ReadChar(text, &at, ':') ||
      !ReadDigits(text, &at, 2, &minute) || !ReadChar(text, &at, ':') ||
      !ReadDigits(text, &at, 2, &second)) {
    return std::nullopt;
  }
  if (at < text.size() && text[at] == '.') {  // a fraction of a second: dropped
    const size_t digits = ++at;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9') ++at;
    if (at == digits) return std::nullopt;
  }
  int64_t offset_seconds = 0;  // east of UTC
  if (at < text.size() && (text[at] == 'Z' || text[at] == 'z')) {
    ++at;
  } else if (at < text.size() && (text[at] == '+' || text[at] == '-')) {
    const int sign = text[at++] == '+' ? 1 : -1;
    int offset_hours = 0, offset_minutes = 0;
    if (!ReadDigits(text, &at, 2, &offset_hours)) return std::nullopt;
    ReadChar(text, &at, ':');
    if (!ReadDigits(text, &at, 2, &offset_minutes) || offset_hours > 23 || offset_minutes > 59) {
      return std::nullopt;
    }
    offset_seconds = sign * (offset_hours * 3600 + offset_minutes * 60);
  }
  if (at != text.size()) return std::nullopt;

  const std::chrono::year_month_day date{std::chrono::year{year},
                                         std::chrono::month{static_cast<unsigned>(month)},
                                         std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok() || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  const int64_t days = std::chrono::sys_days(date).time_since_epoch().count();
  const int64_t seconds =
      days * 86400 + hour * 3600 + minute * 60 + second - offset_seconds;  // |.| < 2^39
  // Before 1970 no credential expires; refusing it also keeps `expiration - now` from
  // overflowing. Past what system_clock holds (2262 with libstdc++'s nanoseconds; converting
  // overflowed, a finding of fuzz/s3_xml_fuzzer.cc), the latest time point it holds.
  if (seconds < 0) return std::nullopt;
  const int64_t max_seconds =
      std::chrono::duration_cast<std::chrono::seconds>(system_clock::duration::max()).count();
  if (seconds > max_seconds) return system_clock::time_point::max();
  return system_clock::time_point(
      std::chrono::duration_cast<system_clock::duration>(std::chrono::seconds(seconds)));
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

// ---- Profiles, and roles assumed through STS -----------------------------------------------

// The longest chain of role profiles (a role whose source_profile is another role...).
constexpr size_t kMaxRoleChain = 5;

// Keys of credential sources Orchard does not implement, with what they are.
constexpr std::pair<const char*, const char*> kUnsupportedKeys[] = {
    {"credential_process", "an external credential process"},
    {"sso_session", "IAM Identity Center (SSO)"},
    {"sso_start_url", "IAM Identity Center (SSO)"},
    {"sso_account_id", "IAM Identity Center (SSO)"},
    {"sso_role_name", "IAM Identity Center (SSO)"},
    {"web_identity_token_file", "AssumeRoleWithWebIdentity"},
    {"mfa_serial", "an MFA code for each AssumeRole, which a batch run cannot type"},
};

struct SharedFiles {
  std::string credentials_path = s3internal::SharedCredentialsFile();
  std::string config_path = s3internal::SharedConfigFile();
  s3internal::IniFile credentials = s3internal::ReadIniFile(credentials_path);
  s3internal::IniFile config = s3internal::ReadIniFile(config_path);
};

// A profile as the AWS CLI sees it: its config-file section with its credentials-file
// section over it (the credentials file wins key by key).
struct ProfileView {
  std::string name;
  bool exists = false;
  std::map<std::string, std::string> values;
  std::map<std::string, std::string> file_of;  // key -> the file it came from

  ProfileView(const SharedFiles& files, std::string profile) : name(std::move(profile)) {
    if (const auto* config = s3internal::ConfigProfile(files.config, name)) {
      exists = true;
      for (const auto& [k, v] : *config) {
        values[k] = v;
        file_of[k] = files.config_path;
      }
    }
    if (auto it = files.credentials.find(name); it != files.credentials.end()) {
      exists = true;
      for (const auto& [k, v] : it->second) {
        values[k] = v;
        file_of[k] = files.credentials_path;
      }
    }
  }
  std::string Get(const char* key) const {
    auto it = values.find(key);
    return it == values.end() ? std::string() : it->second;
  }
  bool Has(const char* key) const { return values.count(key) != 0; }
  // "profile 'dev' in /home/u/.aws/config" for the file that set `key`.
  std::string Where(const char* key) const {
    std::string out = "profile '" + name + "'";
    auto it = file_of.find(key);
    if (it != file_of.end()) out.append(" in ").append(it->second);
    return out;
  }
};

std::string ExportHint(const std::string& profile) {
  return "export plain keys instead, e.g. eval \"$(aws configure export-credentials --profile " +
         profile + " --format env)\"";
}

// Temporary credentials of a role, from STS AssumeRole signed with the source's.
class AssumeRoleProvider : public RefreshingProvider {
 public:
  AssumeRoleProvider(s3internal::AssumeRoleRequest request,
                     std::shared_ptr<CredentialsProvider> source, std::string source_name)
      : request_(std::move(request)),
        source_(std::move(source)),
        source_name_(std::move(source_name)) {}

 protected:
  Result<AwsCredentials> Fetch() override {
    Result<AwsCredentials> source = source_->Get();
    if (!source.ok()) {
      // A missing source is a broken profile, not "no credentials here".
      const StatusCode code = source.status().code() == StatusCode::kNotFound
                                  ? StatusCode::kInvalidArgument
                                  : source.status().code();
      std::string message = "cannot assume role ";
      message.append(request_.role_arn)
          .append(" of profile '")
          .append(request_.profile)
          .append("': its source (")
          .append(source_name_)
          .append(") has no credentials: ")
          .append(source.status().message());
      return Status(code, message);
    }
    if (!http_) {
      ORCHARD_ASSIGN_OR_RETURN(const s3internal::CaCertificates ca,
                               s3internal::CaCertificatesFromEnvironment(""));
      HttpClientOptions o;
      o.max_connections = 1;
      o.connect_timeout_s = 10;
      o.low_speed_time_s = 30;
      o.ca_bundle = ca.file;
      o.ca_path = ca.dir;
      http_ = std::make_unique<HttpClient>(o);
    }
    ORCHARD_ASSIGN_OR_RETURN(AwsCredentials c, s3internal::AssumeRole(*http_, request_, *source));
    c.source = "role " + request_.role_arn + " (profile " + request_.profile + ")";
    return c;
  }

 private:
  const s3internal::AssumeRoleRequest request_;
  const std::shared_ptr<CredentialsProvider> source_;
  const std::string source_name_;
  std::unique_ptr<HttpClient> http_;  // guarded by RefreshingProvider's lock (Fetch)
};

// Turns a profile into a provider: static keys, or a role assumed with another profile's
// (or the environment's, the instance's, the container's) credentials.
class ProfileResolver {
 public:
  explicit ProfileResolver(const SharedFiles& files) : files_(files) {}

  struct Resolved {
    std::shared_ptr<CredentialsProvider> provider;
    bool is_role = false;  // worth keeping: it caches STS credentials
  };

  Result<Resolved> ResolveTop(const std::string& profile, bool explicit_profile) {
    const ProfileView view(files_, profile);
    if (!view.exists) {
      if (explicit_profile) {
        return Status::InvalidArgument("AWS profile '" + profile + "' is in neither " +
                                       files_.credentials_path + " nor " + files_.config_path);
      }
      return Status::NotFound("no keys for profile '" + profile + "' in " +
                              files_.credentials_path + " or " + files_.config_path);
    }
    std::vector<std::string> chain;
    return Resolve(view, chain, /*top_level=*/true);
  }

 private:
  // Static keys of `view`; kNotFound when it has none.
  static Result<AwsCredentials> StaticKeys(const ProfileView& view) {
    AwsCredentials c;
    c.access_key_id = view.Get("aws_access_key_id");
    c.secret_access_key = view.Get("aws_secret_access_key");
    c.session_token = view.Get("aws_session_token");
    if (c.session_token.empty()) c.session_token = view.Get("aws_security_token");
    if (c.access_key_id.empty() && c.secret_access_key.empty()) {
      return Status::NotFound("profile '" + view.name + "' has no aws_access_key_id");
    }
    if (c.access_key_id.empty() || c.secret_access_key.empty()) {
      const char* present = c.access_key_id.empty() ? "aws_secret_access_key" : "aws_access_key_id";
      return Status::InvalidArgument(view.Where(present) + " has " + present +
                                     " but not the other half of the key");
    }
    c.source = "shared file " + view.file_of.at("aws_access_key_id") + ", profile " + view.name;
    return c;
  }

  // The AWS CLI's rule: a profile that names a role assumes it, except as the source of
  // another role when it also has keys (then its keys are the source).
  Result<Resolved> Resolve(const ProfileView& view, std::vector<std::string>& chain,
                           bool top_level) {
    const bool has_keys = view.Has("aws_access_key_id") || view.Has("aws_secret_access_key");
    if (view.Has("role_arn") && (top_level || !has_keys)) return Role(view, chain);
    if (has_keys) {
      ORCHARD_ASSIGN_OR_RETURN(AwsCredentials c, StaticKeys(view));
      return Resolved{MakeStaticCredentialsProvider(std::move(c)), false};
    }
    for (const auto& [key, what] : kUnsupportedKeys) {
      if (view.Has(key)) {
        return Status::Unsupported(view.Where(key) + " uses " + key + " (" + what +
                                   "), which Orchard does not support; " + ExportHint(view.name));
      }
    }
    return Status::NotFound("no keys for profile '" + view.name + "' in " +
                            files_.credentials_path + " or " + files_.config_path);
  }

  Result<Resolved> Role(const ProfileView& view, std::vector<std::string>& chain) {
    chain.push_back(view.name);
    if (chain.size() > kMaxRoleChain) {
      std::string path;
      for (const std::string& p : chain) path.append(path.empty() ? "" : " -> ").append(p);
      return Status::InvalidArgument("role profiles chained more than " +
                                     std::to_string(kMaxRoleChain) + " deep: " + path);
    }
    for (const auto& [key, what] : kUnsupportedKeys) {
      if (view.Has(key)) {
        return Status::Unsupported(view.Where(key) + " uses " + key + " (" + what +
                                   ") with role_arn, which Orchard does not support; " +
                                   ExportHint(view.name));
      }
    }
    const std::string where = view.Where("role_arn");
    const std::string source_profile = view.Get("source_profile");
    const std::string credential_source = view.Get("credential_source");
    if (!source_profile.empty() && !credential_source.empty()) {
      return Status::InvalidArgument(where +
                                     " sets both source_profile and credential_source; keep one");
    }
    if (source_profile.empty() && credential_source.empty()) {
      return Status::InvalidArgument(where +
                                     " has role_arn but neither source_profile nor "
                                     "credential_source (where the keys to assume it come from)");
    }

    s3internal::AssumeRoleRequest request;
    request.profile = view.name;
    request.role_arn = view.Get("role_arn");
    request.session_name = view.Get("role_session_name");
    if (request.session_name.empty()) {
      request.session_name =
          "orchard-" + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                          Clock::now().time_since_epoch())
                                          .count());
    }
    request.external_id = view.Get("external_id");
    if (const std::string d = view.Get("duration_seconds"); !d.empty()) {
      char* end = nullptr;
      const long v = std::strtol(d.c_str(), &end, 10);
      if (end == d.c_str() || *end != '\0' || v < 900 || v > 43200) {
        return Status::InvalidArgument(view.Where("duration_seconds") + " has duration_seconds '" +
                                       d + "': expected a whole number from 900 to 43200");
      }
      request.duration_seconds = static_cast<int>(v);
    }
    request.region = GetEnv("AWS_REGION");
    if (request.region.empty()) request.region = GetEnv("AWS_DEFAULT_REGION");
    if (request.region.empty()) request.region = view.Get("region");
    if (request.region.empty()) request.region = "us-east-1";
    request.endpoint = s3internal::StsEndpoint(view.values, request.region);

    std::shared_ptr<CredentialsProvider> source;
    std::string source_name;
    if (!credential_source.empty()) {
      source_name = "credential_source " + credential_source;
      if (credential_source == "Environment") {
        source = MakeEnvironmentCredentialsProvider();
      } else if (credential_source == "Ec2InstanceMetadata") {
        source = MakeInstanceMetadataCredentialsProvider();
      } else if (credential_source == "EcsContainer") {
        source = MakeContainerCredentialsProvider();
      } else {
        return Status::InvalidArgument(view.Where("credential_source") +
                                       " has credential_source '" + credential_source +
                                       "': expected Environment, Ec2InstanceMetadata or "
                                       "EcsContainer");
      }
    } else {
      source_name = "source_profile " + source_profile;
      if (source_profile == view.name) {
        // "source_profile = self": the profile's own keys assume its role.
        Result<AwsCredentials> own = StaticKeys(view);
        if (!own.ok()) {
          return Status::InvalidArgument(where + " is its own source_profile but has no keys (" +
                                         own.status().message() + ")");
        }
        source = MakeStaticCredentialsProvider(std::move(*own));
      } else {
        if (std::find(chain.begin(), chain.end(), source_profile) != chain.end()) {
          std::string path;
          for (const std::string& p : chain) path.append(p).append(" -> ");
          path.append(source_profile);
          return Status::InvalidArgument("the source_profile settings form a cycle: " + path);
        }
        const ProfileView source_view(files_, source_profile);
        if (!source_view.exists) {
          return Status::InvalidArgument(where + " has source_profile '" + source_profile +
                                         "', which is in neither " + files_.credentials_path +
                                         " nor " + files_.config_path);
        }
        Result<Resolved> resolved = Resolve(source_view, chain, /*top_level=*/false);
        if (!resolved.ok()) {
          if (resolved.status().code() != StatusCode::kNotFound) return resolved.status();
          return Status::InvalidArgument(where + " has source_profile '" + source_profile +
                                         "', which has no credentials (" +
                                         resolved.status().message() + ")");
        }
        source = resolved->provider;
      }
    }
    return Resolved{std::make_shared<AssumeRoleProvider>(std::move(request), std::move(source),
                                                         std::move(source_name)),
                    true};
  }

  const SharedFiles& files_;
};

// The shared files' profile. Files are read on every Get() while they hold static keys (a
// rotated key is picked up); a role profile is resolved once and its provider kept, so that
// its STS credentials are cached and refreshed.
class ProfileProvider : public CredentialsProvider {
 public:
  explicit ProfileProvider(std::string profile) : profile_(std::move(profile)) {}

  Result<AwsCredentials> Get() override {
    std::shared_ptr<CredentialsProvider> role;
    {
      std::lock_guard<std::mutex> lock(mu_);
      role = role_;
    }
    if (role) return role->Get();
    const bool explicit_profile = !profile_.empty() || !GetEnv("AWS_PROFILE").empty() ||
                                  !GetEnv("AWS_DEFAULT_PROFILE").empty();
    const std::string profile = profile_.empty() ? s3internal::ProfileName() : profile_;
    const SharedFiles files;
    ProfileResolver resolver(files);
    ORCHARD_ASSIGN_OR_RETURN(ProfileResolver::Resolved resolved,
                             resolver.ResolveTop(profile, explicit_profile));
    if (resolved.is_role) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!role_) role_ = resolved.provider;
      role = role_;
    } else {
      role = resolved.provider;
    }
    return role->Get();
  }

 private:
  const std::string profile_;
  std::mutex mu_;
  std::shared_ptr<CredentialsProvider> role_;
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
