// Progress on stderr: a redrawn bar with images/s and ETA on a terminal, plain log lines
// (at most one every few seconds) otherwise, so CI logs stay readable.
#pragma once

#include "orchard/pipeline.h"

namespace orchard::cli {

class ProgressReporter {
 public:
  ProgressReporter(bool enabled, bool terminal) : enabled_(enabled), terminal_(terminal) {}
  void Update(const Progress& progress);
  void Finish();

 private:
  bool enabled_;
  bool terminal_;
  double last_print_ = -1e9;
  bool drawn_ = false;
  std::string last_phase_;
};

}  // namespace orchard::cli
