// Test hooks for crash tests: the process kills itself (SIGKILL, like `kill -9` or a lost
// spot instance) at a chosen point, so that a test can crash a run in every phase, not only
// where a timer happens to land.
//
// ORCHARD_CRASH_AT=<point>:<n> kills the process the n-th time CrashPoint(<point>) runs
// (n from 1). Points: list (per listed object), extract (per batch featurized), commit
// (between a segment's descriptors and its record), committed (after a record), accumulate
// (per chunk added to the PCA), fit (before the eigendecomposition), write (per chunk of
// output rows), publish (before each output file is published). Without the variable a
// CrashPoint is one relaxed atomic load.
#pragma once

namespace orchard {

void CrashPoint(const char* point);

}  // namespace orchard
