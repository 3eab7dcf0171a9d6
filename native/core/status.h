// Status codes returned by the C++ core. The core never throws; the binding maps
// these to JS errors (native/binding/errors.cc).
#pragma once

namespace ragdiff {

enum class Status : int {
  kOk = 0,
  kInvalidArgument = 1,   // a size, option or index the core cannot use
  kNonFinite = 2,         // NaN or +-Inf found in an input tensor
  kOutOfRange = 3,        // a timestep / step index outside the schedule
  kUnsupported = 4,       // a configuration the core does not implement
  kCudaUnavailable = 5,   // no usable CUDA device / driver
  kCudaError = 6,         // a CUDA call failed
};

const char* status_name(Status s);

}  // namespace ragdiff
