// Test helpers for the S3 client (header-only, used by the s3_*_test.cc files):
//   * FakeHttpServer: a loopback HTTP/1.1 server on a thread, answering with a handler;
//     it can also reset, truncate or stall, to test transport error handling.
//   * ScopedAwsEnv: clears every AWS_* variable the client reads (and points HOME at a
//     scratch folder) for the life of a test, then restores them.
//   * S3TestServer: the ORCHARD_TEST_S3_* settings of scripts/s3-test-server.
//   * ChildProcess: runs a helper (the fault proxy) and reads its first output line.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_util.h"

namespace orchard::testing {

struct FakeRequest {
  std::string method;
  std::string target;                                        // path and query as sent
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;

  std::string Header(const std::string& lower_name) const {
    for (const auto& [n, v] : headers) {
      if (n == lower_name) return v;
    }
    return "";
  }
  bool HasHeader(const std::string& lower_name) const {
    for (const auto& [n, v] : headers) {
      if (n == lower_name) return true;
    }
    return false;
  }
  std::string Path() const { return target.substr(0, target.find('?')); }
  std::string Query() const {
    const size_t q = target.find('?');
    return q == std::string::npos ? "" : target.substr(q + 1);
  }
};

struct FakeResponse {
  enum class Action {
    kRespond,   // send the response
    kReset,     // read the request, then reset the connection (RST), no response
    kTruncate,  // send the head with the full Content-Length but half the body, then close
    kStall,     // send nothing for stall_seconds, then close
  };
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  Action action = Action::kRespond;
  double stall_seconds = 0;

  static FakeResponse Ok(std::string body) {
    FakeResponse r;
    r.body = std::move(body);
    return r;
  }
  static FakeResponse S3Error(int status, const std::string& code, const std::string& message) {
    FakeResponse r;
    r.status = status;
    r.headers = {{"Content-Type", "application/xml"}, {"x-amz-request-id", "FAKE123"}};
    r.body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + code +
             "</Code><Message>" + message + "</Message><RequestId>FAKE123</RequestId></Error>";
    return r;
  }
  static FakeResponse Act(Action a) {
    FakeResponse r;
    r.action = a;
    r.body = std::string(1000, 'x');
    return r;
  }
};

// A thread per connection and "Connection: close" on every response. The handler may be
// called from several threads at once. Stops (and joins every thread) on destruction.
class FakeHttpServer {
 public:
  using Handler = std::function<FakeResponse(const FakeRequest&)>;

  explicit FakeHttpServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listen_fd_, 16) != 0) {
      std::abort();
    }
    socklen_t len = sizeof(addr);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }

  ~FakeHttpServer() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  int requests() const { return requests_.load(); }
  std::vector<FakeRequest> received() const {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      // A thread per connection: a stalled answer must not hold up the client's retry.
      connections_.emplace_back([this, fd] { HandleConnection(fd); });
    }
    for (std::thread& t : connections_) t.join();
  }

  // Reads up to "\r\n\r\n" and the Content-Length body; false on EOF, error or timeout.
  bool ReadRequest(int fd, FakeRequest* request) {
    std::string data;
    char buf[65536];
    size_t head_end = std::string::npos;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    auto read_more = [&]() {
      while (!stop_ && std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) return false;
        data.append(buf, static_cast<size_t>(n));
        return true;
      }
      return false;
    };
    while ((head_end = data.find("\r\n\r\n")) == std::string::npos) {
      if (!read_more()) return false;
    }
    const std::string head = data.substr(0, head_end);
    size_t line_end = head.find("\r\n");
    const std::string first = head.substr(0, line_end);
    const size_t sp1 = first.find(' ');
    const size_t sp2 = first.rfind(' ');
    request->method = first.substr(0, sp1);
    request->target = first.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t length = 0;
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t end = head.find("\r\n", pos);
      if (end == std::string::npos) end = head.size();
      const std::string line = head.substr(pos, end - pos);
      pos = end + 2;
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      if (name == "content-length") length = std::strtoull(value.c_str(), nullptr, 10);
      request->headers.emplace_back(name, value);
    }
    while (data.size() < head_end + 4 + length) {
      if (!read_more()) return false;
    }
    request->body = data.substr(head_end + 4, length);
    return true;
  }

  static void SendAll(int fd, const std::string& s) {
    size_t done = 0;
    while (done < s.size()) {
      const ssize_t n = ::send(fd, s.data() + done, s.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return;
      done += static_cast<size_t>(n);
    }
  }

  void HandleConnection(int fd) {
    FakeRequest request;
    if (!ReadRequest(fd, &request)) {
      ::close(fd);
      return;
    }
    ++requests_;
    {
      std::lock_guard<std::mutex> lock(mu_);
      received_.push_back(request);
    }
    const FakeResponse response = handler_(request);
    using A = FakeResponse::Action;
    if (response.action == A::kReset) {
      linger l{1, 0};  // close() then sends RST
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
      ::close(fd);
      return;
    }
    if (response.action == A::kStall) {
      const auto until = std::chrono::steady_clock::now() +
                         std::chrono::milliseconds(static_cast<int>(response.stall_seconds * 1000));
      while (!stop_ && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      ::close(fd);
      return;
    }
    std::string out = "HTTP/1.1 " + std::to_string(response.status) + " Status\r\n";
    for (const auto& [n, v] : response.headers) out += n + ": " + v + "\r\n";
    out += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
    out += "Connection: close\r\n\r\n";
    if (request.method != "HEAD") {
      out += response.action == A::kTruncate ? response.body.substr(0, response.body.size() / 2)
                                             : response.body;
    }
    SendAll(fd, out);
    ::shutdown(fd, SHUT_WR);
    ::close(fd);
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  mutable std::mutex mu_;
  std::vector<FakeRequest> received_;
  std::vector<std::thread> connections_;  // owned by the serving thread
  std::thread thread_;
};

// Clears the AWS environment for one test (and points HOME at a scratch folder so that a
// developer's real ~/.aws is never read); restores everything on destruction.
class ScopedAwsEnv {
 public:
  ScopedAwsEnv() {
    for (const char* name : kNames) {
      const char* v = std::getenv(name);
      saved_.emplace_back(name, v ? std::optional<std::string>(v) : std::nullopt);
      ::unsetenv(name);
    }
    ::setenv("HOME", home_.path().c_str(), 1);
    // Never wait for a real instance metadata service.
    ::setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
  }
  ~ScopedAwsEnv() {
    for (const auto& [name, value] : saved_) {
      if (value.has_value()) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }
  void Set(const char* name, const std::string& value) { ::setenv(name, value.c_str(), 1); }
  void Unset(const char* name) { ::unsetenv(name); }
  const std::filesystem::path& home() const { return home_.path(); }

 private:
  static constexpr const char* kNames[] = {
      "HOME",
      "AWS_ACCESS_KEY_ID",
      "AWS_SECRET_ACCESS_KEY",
      "AWS_SESSION_TOKEN",
      "AWS_PROFILE",
      "AWS_DEFAULT_PROFILE",
      "AWS_SHARED_CREDENTIALS_FILE",
      "AWS_CONFIG_FILE",
      "AWS_REGION",
      "AWS_DEFAULT_REGION",
      "AWS_ENDPOINT_URL",
      "AWS_ENDPOINT_URL_S3",
      "AWS_ENDPOINT_URL_STS",
      "AWS_CA_BUNDLE",
      "SSL_CERT_FILE",
      "SSL_CERT_DIR",
      "AWS_EC2_METADATA_DISABLED",
      "AWS_EC2_METADATA_SERVICE_ENDPOINT",
      "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
      "AWS_METADATA_SERVICE_TIMEOUT",
      "AWS_METADATA_SERVICE_NUM_ATTEMPTS",
      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
      "AWS_CONTAINER_CREDENTIALS_FULL_URI",
      "AWS_CONTAINER_AUTHORIZATION_TOKEN",
      "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
  };
  ScratchDir home_;
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// The servers of scripts/s3-test-server: ORCHARD_TEST_S3_* from the environment, else from
// the env file it writes (build/s3-test-server.env) while its server runs. Empty endpoint =
// not available.
struct S3TestServer {
  std::string endpoint;
  std::string access_key_id;
  std::string secret_access_key;
  std::string readonly_access_key_id;
  std::string readonly_secret_access_key;
  std::string region = "us-east-1";
  std::string moto_endpoint;

  static S3TestServer FromEnvironment() {
    std::map<std::string, std::string> file;
    std::ifstream in(SourceDir() / "build" / "s3-test-server.env");
    std::string line;
    while (std::getline(in, line)) {
      const size_t eq = line.find('=');
      if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
      file[line.substr(0, eq)] = line.substr(eq + 1);
    }
    // A file left behind by servers that are gone is ignored (the tests then skip).
    if (auto pid = file.find("ORCHARD_TEST_S3_SERVER_PID");
        pid != file.end() && !std::filesystem::exists("/proc/" + pid->second)) {
      file.clear();
    }
    auto get = [&](const std::string& name) {
      const std::string key = "ORCHARD_TEST_" + name;
      if (const char* v = std::getenv(key.c_str()); v != nullptr && *v != '\0')
        return std::string(v);
      auto it = file.find(key);
      return it == file.end() ? std::string() : it->second;
    };
    S3TestServer s;
    s.endpoint = get("S3_ENDPOINT");
    s.access_key_id = get("S3_ACCESS_KEY_ID");
    s.secret_access_key = get("S3_SECRET_ACCESS_KEY");
    s.readonly_access_key_id = get("S3_READONLY_ACCESS_KEY_ID");
    s.readonly_secret_access_key = get("S3_READONLY_SECRET_ACCESS_KEY");
    if (!get("S3_REGION").empty()) s.region = get("S3_REGION");
    s.moto_endpoint = get("MOTO_ENDPOINT");
    return s;
  }
};

inline constexpr char kNoS3ServerMessage[] =
    "no S3 test server: set ORCHARD_TEST_S3_ENDPOINT and friends, or run "
    "`scripts/s3-test-server start` (CI always does)";

// A child process with its stdout on a pipe; killed (by its pid) and reaped on destruction.
class ChildProcess {
 public:
  explicit ChildProcess(const std::vector<std::string>& argv) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fds[1], 1);
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    out_fd_ = fds[0];
  }
  ~ChildProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
  }
  // The first line the child prints, or "" on EOF/timeout.
  std::string ReadLine(double timeout_s) {
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(static_cast<int>(timeout_s * 1000));
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{out_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char c;
      if (::read(out_fd_, &c, 1) != 1) break;
      if (c == '\n') return line;
      line.push_back(c);
    }
    return "";
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
};

}  // namespace orchard::testing
