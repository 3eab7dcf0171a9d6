#include "binding/registry.h"
namespace ragdiff { namespace binding {
void init_cuda(Napi::Env env, Napi::Object exports) {}
}}
