#include "progress.h"

#include <cstdio>
#include <string>

namespace orchard::cli {

void ProgressReporter::Update(const Progress& p) {
  if (!enabled_) return;
  const bool phase_changed = last_phase_ != p.phase;
  const double interval = terminal_ ? 0.2 : 5.0;
  if (!phase_changed && p.elapsed_seconds - last_print_ < interval) return;
  last_print_ = p.elapsed_seconds;
  last_phase_ = p.phase;
  const int64_t done = p.processed + p.failed;
  const double rate =
      p.elapsed_seconds > 0 ? static_cast<double>(p.processed) / p.elapsed_seconds : 0.0;
  const double eta = rate > 0 && p.total > done ? static_cast<double>(p.total - done) / rate : 0.0;
  if (terminal_) {
    constexpr int kWidth = 30;
    const int filled = p.total > 0 ? static_cast<int>(kWidth * done / p.total) : 0;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr, "\r%-12s [%s] %lld/%lld  %.1f img/s  ETA %.0f s  (%lld failed)   ",
                 p.phase, bar.c_str(), static_cast<long long>(done),
                 static_cast<long long>(p.total), rate, eta, static_cast<long long>(p.failed));
    drawn_ = true;
  } else {
    std::fprintf(stderr, "orchard: %s %lld/%lld images, %.1f img/s, ETA %.0f s, %lld failed\n",
                 p.phase, static_cast<long long>(done), static_cast<long long>(p.total), rate, eta,
                 static_cast<long long>(p.failed));
  }
  std::fflush(stderr);
}

void ProgressReporter::Finish() {
  if (drawn_) std::fprintf(stderr, "\n");
  drawn_ = false;
}

}  // namespace orchard::cli
