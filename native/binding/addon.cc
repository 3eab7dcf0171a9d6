// The addon's entry point: registers every *_binding.cc.
#include <napi.h>

#include "binding/registry.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace ragdiff::binding;
  init_runtime(env, exports);
  init_rng(env, exports);
  init_pixels(env, exports);
  init_scheduler(env, exports);
  init_context(env, exports);
  init_cuda(env, exports);
  init_trajectory(env, exports);  // after init_cuda: adds cuda.trajectoryTopK
  init_topk(env, exports);        // after init_cuda: adds cuda.topkExact
  return exports;
}

}  // namespace

NODE_API_MODULE(ragdiff, Init)
