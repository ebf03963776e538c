#include "pipeline/lease_lock.h"

#include <signal.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>

#include "util/catch_all.h"

namespace orchard {
namespace {

std::string HostName() {
  char name[256] = {0};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "?";
  return name;
}

std::string RandomToken() {
  unsigned char bytes[16] = {0};
  if (::getrandom(bytes, sizeof(bytes), 0) != static_cast<ssize_t>(sizeof(bytes))) {
    // No entropy source: the pid and the time still tell this run from others.
    return std::to_string(::getpid()) + "-" + std::to_string(std::time(nullptr));
  }
  static const char kHex[] = "0123456789abcdef";
  std::string token;
  for (unsigned char b : bytes) {
    token.push_back(kHex[b >> 4]);
    token.push_back(kHex[b & 15]);
  }
  return token;
}

int64_t NowSeconds() { return static_cast<int64_t>(std::time(nullptr)); }

struct Holder {
  std::string token;
  std::string host;
  int64_t pid = 0;
  int64_t renewed = 0;  // unix seconds, by the holder's clock
  int64_t lease = 0;
};

// nullopt for bytes that are not a lease (an empty or foreign object): treated as stale.
std::optional<Holder> ParseHolder(const std::vector<uint8_t>& bytes) {
  const auto j = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (!j.is_object()) return std::nullopt;
  Holder h;
  try {
    h.token = j.at("token").get<std::string>();
    h.host = j.at("host").get<std::string>();
    h.pid = j.at("pid").get<int64_t>();
    h.renewed = j.at("renewed").get<int64_t>();
    h.lease = j.at("lease_seconds").get<int64_t>();
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  return h;
}

bool ProcessIsAlive(int64_t pid) {
  if (pid <= 0 || pid > INT32_MAX) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

// Why a holder no longer holds, or "" when it does.
std::string StaleReason(const std::optional<Holder>& holder) {
  if (!holder) return "it is not a lease Orchard wrote";
  if (holder->host == HostName() && !ProcessIsAlive(holder->pid)) {
    return "its run (pid " + std::to_string(holder->pid) + " on this machine) has ended";
  }
  const int64_t age = NowSeconds() - holder->renewed;
  if (age > holder->lease) {
    return "its run (pid " + std::to_string(holder->pid) + " on " + holder->host +
           ") has not renewed it for " + std::to_string(age) + " s, more than its lease of " +
           std::to_string(holder->lease) + " s";
  }
  return "";
}

}  // namespace

std::chrono::seconds LeaseLock::LeaseLength() {
  if (const char* text = std::getenv("ORCHARD_LOCK_LEASE_SECONDS")) {
    char* end = nullptr;
    const long seconds = std::strtol(text, &end, 10);
    if (end != text && *end == '\0' && seconds >= 3 && seconds <= 86400) {
      return std::chrono::seconds(seconds);
    }
  }
  return std::chrono::seconds(120);
}

LeaseLock::LeaseLock(Storage& storage, std::string key, std::string token,
                     std::chrono::seconds lease)
    : storage_(storage), key_(std::move(key)), token_(std::move(token)), lease_(lease) {}

std::string LeaseLock::Body() const {
  return nlohmann::json{{"token", token_},
                        {"host", HostName()},
                        {"pid", static_cast<int64_t>(::getpid())},
                        {"renewed", NowSeconds()},
                        {"lease_seconds", static_cast<int64_t>(lease_.count())}}
      .dump();
}

Result<std::unique_ptr<LeaseLock>> LeaseLock::Acquire(
    Storage& storage, const std::string& key, const std::string& location,
    const std::function<void(const std::string&)>& warn) {
  std::unique_ptr<LeaseLock> lock(new LeaseLock(storage, key, RandomToken(), LeaseLength()));
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto created = storage.CreateIfAbsent(key, lock->Body());
    if (!created.ok() && created.status().code() == StatusCode::kUnsupported) {
      return std::unique_ptr<LeaseLock>();
    }
    if (!created.ok()) return created.status().WithContext("taking the lock of " + location);
    if (*created) {
      ORCHARD_RETURN_NOT_OK(CatchAll("starting the lock's renewal", [&] {
        lock->renewer_ = std::thread([raw = lock.get()] { raw->RenewUntilStopped(); });
        return Status::OK();
      }));
      return lock;
    }
    auto bytes = storage.Read(key);
    if (!bytes.ok() && bytes.status().code() == StatusCode::kNotFound) continue;  // released
    if (!bytes.ok()) return bytes.status().WithContext("reading the lock of " + location);
    const std::optional<Holder> holder = ParseHolder(*bytes);
    const std::string stale = StaleReason(holder);
    if (stale.empty()) {
      const int64_t age = NowSeconds() - holder->renewed;
      return Status::InvalidArgument(
          "output " + location + " is in use by another orchard run (pid " +
          std::to_string(holder->pid) + " on " + holder->host + ", lock renewed " +
          std::to_string(age) + " s ago); wait for it to end, or choose another output. A run " +
          "killed on another machine holds it for at most " + std::to_string(holder->lease) +
          " s more");
    }
    // Take the stale lease over, unless someone else did in the meantime.
    auto again = storage.Read(key);
    if (again.ok() && *again != *bytes) continue;
    if (warn) warn("took over the lock of " + location + ": " + stale);
    ORCHARD_RETURN_NOT_OK(storage.Delete(key));
  }
  return Status::IOError("could not take the lock of " + location +
                         ": other runs keep taking it; try again");
}

void LeaseLock::RenewUntilStopped() {
  std::unique_lock guard(mutex_);
  while (!stop_requested_.wait_for(guard, lease_ / 4, [this] { return stop_; })) {
    guard.unlock();
    // A failed renewal is retried at the next tick; the lease covers three of them. A lease
    // that another run took over (this one looked dead to it) is left to that run.
    bool lost = false;
    (void)CatchAll("renewing the lock", [&] {
      auto bytes = storage_.Read(key_);
      if (bytes.ok()) {
        const std::optional<Holder> holder = ParseHolder(*bytes);
        lost = !holder || holder->token != token_;
      }
      return lost ? Status::OK() : storage_.Write(key_, Body());
    });
    guard.lock();
    if (lost) return;
  }
}

LeaseLock::~LeaseLock() {
  {
    std::lock_guard guard(mutex_);
    stop_ = true;
  }
  stop_requested_.notify_all();
  if (renewer_.joinable()) renewer_.join();
  // Released only if still ours: a run that lost it (taken over as stale) leaves the new
  // holder's lease alone.
  auto bytes = storage_.Read(key_);
  if (!bytes.ok()) return;
  const std::optional<Holder> holder = ParseHolder(*bytes);
  if (holder && holder->token == token_) (void)storage_.Delete(key_);
}

}  // namespace orchard
