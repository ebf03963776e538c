#include "util/crash_point.h"

#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

namespace orchard {
namespace {

struct Target {
  std::string point;
  long long after = 0;
};

const Target* ParseTarget() {
  const char* spec = std::getenv("ORCHARD_CRASH_AT");
  if (spec == nullptr || *spec == '\0') return nullptr;
  const char* colon = std::strrchr(spec, ':');
  auto* target = new Target;  // lives for the process
  target->point = colon ? std::string(spec, colon) : std::string(spec);
  target->after = colon ? std::atoll(colon + 1) : 1;
  return target;
}

std::atomic<long long> hits{0};

}  // namespace

void CrashPoint(const char* point) {
  static const Target* target = ParseTarget();
  if (target == nullptr || target->point != point) return;
  if (hits.fetch_add(1) + 1 >= target->after) ::raise(SIGKILL);
}

}  // namespace orchard
