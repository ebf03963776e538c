#include "pipeline/lease_lock.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ctime>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

namespace orchard {
namespace {

const std::string kKey = "_orchard/lock";

std::string HostName() {
  char name[256] = {0};
  ::gethostname(name, sizeof(name) - 1);
  return name;
}

// A pid that belonged to a process which has ended.
int64_t DeadPid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

nlohmann::json Lease(const std::string& host, int64_t pid, int64_t renewed_ago) {
  return {{"token", "someone-else"},
          {"host", host},
          {"pid", pid},
          {"renewed", static_cast<int64_t>(std::time(nullptr)) - renewed_ago},
          {"lease_seconds", 120}};
}

nlohmann::json Stored(MemoryStorage& storage) {
  auto bytes = storage.Read(kKey);
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  return bytes.ok() ? nlohmann::json::parse(bytes->begin(), bytes->end()) : nlohmann::json();
}

void Put(MemoryStorage& storage, const nlohmann::json& lease) {
  const std::string text = lease.dump();
  storage.Put(kKey, std::vector<uint8_t>(text.begin(), text.end()));
}

TEST(LeaseLock, OneHolderAtATimeAndReleasedAtTheEnd) {
  MemoryStorage storage;
  {
    auto first = LeaseLock::Acquire(storage, kKey, "s3://b/out", nullptr);
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    ASSERT_NE(*first, nullptr);
    EXPECT_EQ(Stored(storage)["pid"], ::getpid());
    auto second = LeaseLock::Acquire(storage, kKey, "s3://b/out", nullptr);
    ASSERT_FALSE(second.ok());
    EXPECT_NE(second.status().message().find("is in use by another orchard run (pid " +
                                             std::to_string(::getpid()) + " on " + HostName()),
              std::string::npos)
        << second.status().message();
  }
  EXPECT_EQ(storage.Read(kKey).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(LeaseLock::Acquire(storage, kKey, "s3://b/out", nullptr).ok());
}

TEST(LeaseLock, RacingRunsGetItOnce) {
  MemoryStorage storage;
  std::vector<std::unique_ptr<LeaseLock>> held(8);
  std::vector<std::thread> runs;
  for (auto& slot : held) {
    runs.emplace_back([&storage, &slot] {
      auto lock = LeaseLock::Acquire(storage, kKey, "out", nullptr);
      if (lock.ok()) slot = std::move(*lock);
    });
  }
  for (auto& t : runs) t.join();
  EXPECT_EQ(std::count_if(held.begin(), held.end(), [](auto& l) { return l != nullptr; }), 1);
}

TEST(LeaseLock, StaleLeasesAreTakenOverLoudlyAndLiveOnesAreNot) {
  MemoryStorage storage;
  std::vector<std::string> warnings;
  auto warn = [&](const std::string& w) { warnings.push_back(w); };

  Put(storage, Lease(HostName(), DeadPid(), 0));  // killed on this machine a moment ago
  {
    auto lock = LeaseLock::Acquire(storage, kKey, "out", warn);
    ASSERT_TRUE(lock.ok()) << lock.status().ToString();
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("on this machine) has ended"), std::string::npos) << warnings[0];
  }
  Put(storage, Lease("other-host", 1, 1000));  // another machine, silent for 1000 s
  {
    auto lock = LeaseLock::Acquire(storage, kKey, "out", warn);
    ASSERT_TRUE(lock.ok()) << lock.status().ToString();
    ASSERT_EQ(warnings.size(), 2u);
    EXPECT_NE(warnings[1].find("has not renewed it for 1000 s"), std::string::npos) << warnings[1];
  }
  Put(storage, Lease("other-host", 1, 10));  // alive elsewhere
  auto refused = LeaseLock::Acquire(storage, kKey, "out", warn);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("pid 1 on other-host, lock renewed 10 s ago"),
            std::string::npos)
      << refused.status().message();
  EXPECT_EQ(Stored(storage)["token"], "someone-else");  // untouched
}

TEST(LeaseLock, RenewsWhileHeldAndLeavesANewHoldersLeaseAlone) {
  ::setenv("ORCHARD_LOCK_LEASE_SECONDS", "4", 1);  // renewed every second
  MemoryStorage storage;
  {
    auto lock = LeaseLock::Acquire(storage, kKey, "out", nullptr);
    ASSERT_TRUE(lock.ok());
    EXPECT_EQ(Stored(storage)["lease_seconds"], 4);
    const int64_t first = Stored(storage)["renewed"];
    std::this_thread::sleep_for(std::chrono::milliseconds(2200));
    EXPECT_GT(Stored(storage)["renewed"].get<int64_t>(), first);
    Put(storage, Lease("other-host", 1, 0));  // taken over (as if we had been stale)
  }
  ::unsetenv("ORCHARD_LOCK_LEASE_SECONDS");
  EXPECT_EQ(Stored(storage)["token"], "someone-else");
}

}  // namespace
}  // namespace orchard
