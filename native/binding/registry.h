// Each *_binding.cc contributes its functions to the addon's exports.
#pragma once

#include <napi.h>

namespace ragdiff {
namespace binding {

void init_rng(Napi::Env env, Napi::Object exports);
void init_pixels(Napi::Env env, Napi::Object exports);
void init_scheduler(Napi::Env env, Napi::Object exports);
void init_context(Napi::Env env, Napi::Object exports);
void init_cuda(Napi::Env env, Napi::Object exports);
void init_runtime(Napi::Env env, Napi::Object exports);
void init_trajectory(Napi::Env env, Napi::Object exports);
void init_topk(Napi::Env env, Napi::Object exports);

}  // namespace binding
}  // namespace ragdiff
