// JS error helpers for the binding. No C++ exceptions cross the boundary: each
// helper sets a pending JS exception (TypeError / RangeError / Error with a
// `.code`) and the caller returns at once.
#pragma once

#include <napi.h>

#include <string>

#include "core/status.h"

namespace ragdiff {
namespace binding {

void throw_type(Napi::Env env, const char* code, const std::string& msg);
void throw_range(Napi::Env env, const char* code, const std::string& msg);
void throw_error(Napi::Env env, const char* code, const std::string& msg);
// Maps a core status to the JS error kind: invalid argument / unsupported -> TypeError
// or RangeError as appropriate, CUDA errors -> Error.
void throw_status(Napi::Env env, Status s, const std::string& msg);

// Argument readers: each returns false (with an exception pending) when the
// argument is missing or of the wrong type; `name` appears in the message.
bool get_f32(const Napi::CallbackInfo& info, size_t i, const char* name, float** data, size_t* len);
bool get_f32_or_null(const Napi::CallbackInfo& info, size_t i, const char* name, float** data, size_t* len);
bool get_f64(const Napi::CallbackInfo& info, size_t i, const char* name, double** data, size_t* len);
bool get_i32(const Napi::CallbackInfo& info, size_t i, const char* name, int32_t** data, size_t* len);
bool get_i32_or_null(const Napi::CallbackInfo& info, size_t i, const char* name, int32_t** data, size_t* len);
bool get_u8(const Napi::CallbackInfo& info, size_t i, const char* name, uint8_t** data, size_t* len);
bool get_number(const Napi::CallbackInfo& info, size_t i, const char* name, double* out);
bool get_finite(const Napi::CallbackInfo& info, size_t i, const char* name, double* out);
bool get_index(const Napi::CallbackInfo& info, size_t i, const char* name, double max, uint64_t* out);
bool get_string(const Napi::CallbackInfo& info, size_t i, const char* name, std::string* out);

}  // namespace binding
}  // namespace ragdiff
