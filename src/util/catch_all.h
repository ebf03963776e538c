// Turns exceptions into a Status at the edge of a thread. An exception that leaves a thread's
// function ends the whole process (std::terminate): from OpenCV, the standard library or an
// allocation it must become an error row or a run failure instead.
#pragma once

#include <exception>
#include <new>
#include <string>

#include "orchard/status.h"

namespace orchard {

// Runs `body` (returning Status) and returns its status, or the exception it threw as
// kResourceExhausted (std::bad_alloc) or kInternal, with `what` saying where.
template <typename Body>
Status CatchAll(const char* what, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted(std::string("out of memory in ") + what);
  } catch (const std::exception& e) {
    return Status::Internal(std::string(what) + ": unexpected error: " + e.what());
  } catch (...) {
    return Status::Internal(std::string(what) + ": unexpected error of an unknown type");
  }
}

}  // namespace orchard
