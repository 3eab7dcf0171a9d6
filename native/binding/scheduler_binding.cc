#include "binding/registry.h"
namespace ragdiff { namespace binding {
void init_scheduler(Napi::Env env, Napi::Object exports) {}
}}
