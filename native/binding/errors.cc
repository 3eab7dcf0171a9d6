#include "binding/errors.h"

#include <cmath>

namespace ragdiff {
namespace binding {
namespace {

void throw_with_code(Napi::Env env, Napi::Error err, const char* code) {
  err.Set("code", Napi::String::New(env, code));
  err.ThrowAsJavaScriptException();
}

std::string arg_name(size_t i, const char* name) {
  return name ? std::string(name) : ("argument " + std::to_string(i));
}

template <napi_typedarray_type T, class E>
bool get_typed(const Napi::CallbackInfo& info, size_t i, const char* name, const char* type_name, E** data,
               size_t* len, bool allow_null) {
  Napi::Env env = info.Env();
  Napi::Value v = info[i];
  if (allow_null && (v.IsNull() || v.IsUndefined())) {
    *data = nullptr;
    *len = 0;
    return true;
  }
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != T) {
    throw_type(env, "INVALID_TYPE", arg_name(i, name) + " must be a " + type_name);
    return false;
  }
  auto a = v.As<Napi::TypedArrayOf<E>>();
  *data = a.Data();
  *len = a.ElementLength();
  return true;
}

}  // namespace

void throw_type(Napi::Env env, const char* code, const std::string& msg) {
  throw_with_code(env, Napi::TypeError::New(env, msg), code);
}
void throw_range(Napi::Env env, const char* code, const std::string& msg) {
  throw_with_code(env, Napi::RangeError::New(env, msg), code);
}
void throw_error(Napi::Env env, const char* code, const std::string& msg) {
  throw_with_code(env, Napi::Error::New(env, msg), code);
}

void throw_status(Napi::Env env, Status s, const std::string& msg) {
  switch (s) {
    case Status::kOk: return;
    case Status::kInvalidArgument: throw_range(env, "INVALID_VALUE", msg); return;
    case Status::kNonFinite: throw_range(env, "NON_FINITE", msg); return;
    case Status::kOutOfRange: throw_range(env, "OUT_OF_RANGE", msg); return;
    case Status::kUnsupported: throw_range(env, "UNSUPPORTED", msg); return;
    case Status::kCudaUnavailable: throw_error(env, "CUDA_UNAVAILABLE", msg); return;
    case Status::kCudaError: throw_error(env, "CUDA_ERROR", msg); return;
  }
}

bool get_f32(const Napi::CallbackInfo& info, size_t i, const char* name, float** data, size_t* len) {
  return get_typed<napi_float32_array>(info, i, name, "Float32Array", data, len, false);
}
bool get_f32_or_null(const Napi::CallbackInfo& info, size_t i, const char* name, float** data, size_t* len) {
  return get_typed<napi_float32_array>(info, i, name, "Float32Array", data, len, true);
}
bool get_f64(const Napi::CallbackInfo& info, size_t i, const char* name, double** data, size_t* len) {
  return get_typed<napi_float64_array>(info, i, name, "Float64Array", data, len, false);
}
bool get_i32(const Napi::CallbackInfo& info, size_t i, const char* name, int32_t** data, size_t* len) {
  return get_typed<napi_int32_array>(info, i, name, "Int32Array", data, len, false);
}
bool get_i32_or_null(const Napi::CallbackInfo& info, size_t i, const char* name, int32_t** data, size_t* len) {
  return get_typed<napi_int32_array>(info, i, name, "Int32Array", data, len, true);
}
bool get_u8(const Napi::CallbackInfo& info, size_t i, const char* name, uint8_t** data, size_t* len) {
  Napi::Env env = info.Env();
  Napi::Value v = info[i];
  if (v.IsTypedArray()) {
    auto t = v.As<Napi::TypedArray>().TypedArrayType();
    if (t == napi_uint8_array || t == napi_uint8_clamped_array) {
      auto a = v.As<Napi::TypedArray>();
      *data = static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
      *len = a.ElementLength();
      return true;
    }
  }
  throw_type(env, "INVALID_TYPE", arg_name(i, name) + " must be a Uint8Array");
  return false;
}

bool get_number(const Napi::CallbackInfo& info, size_t i, const char* name, double* out) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) {
    throw_type(info.Env(), "INVALID_TYPE", arg_name(i, name) + " must be a number");
    return false;
  }
  *out = v.As<Napi::Number>().DoubleValue();
  return true;
}

bool get_finite(const Napi::CallbackInfo& info, size_t i, const char* name, double* out) {
  if (!get_number(info, i, name, out)) return false;
  if (!std::isfinite(*out)) {
    throw_range(info.Env(), "NON_FINITE", arg_name(i, name) + " must be finite");
    return false;
  }
  return true;
}

bool get_index(const Napi::CallbackInfo& info, size_t i, const char* name, double max, uint64_t* out) {
  double d;
  if (!get_number(info, i, name, &d)) return false;
  if (!(d >= 0 && d <= max && std::floor(d) == d)) {
    throw_range(info.Env(), "OUT_OF_RANGE", arg_name(i, name) + " must be an integer in 0.." + std::to_string(static_cast<unsigned long long>(max)));
    return false;
  }
  *out = static_cast<uint64_t>(d);
  return true;
}

bool get_string(const Napi::CallbackInfo& info, size_t i, const char* name, std::string* out) {
  Napi::Value v = info[i];
  if (!v.IsString()) {
    throw_type(info.Env(), "INVALID_TYPE", arg_name(i, name) + " must be a string");
    return false;
  }
  *out = v.As<Napi::String>().Utf8Value();
  return true;
}

}  // namespace binding
}  // namespace ragdiff
