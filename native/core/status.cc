#include "core/status.h"

namespace ragdiff {

const char* status_name(Status s) {
  switch (s) {
    case Status::kOk: return "OK";
    case Status::kInvalidArgument: return "INVALID_ARGUMENT";
    case Status::kNonFinite: return "NON_FINITE";
    case Status::kOutOfRange: return "OUT_OF_RANGE";
    case Status::kUnsupported: return "UNSUPPORTED";
    case Status::kCudaUnavailable: return "CUDA_UNAVAILABLE";
    case Status::kCudaError: return "CUDA_ERROR";
  }
  return "UNKNOWN";
}

}  // namespace ragdiff
