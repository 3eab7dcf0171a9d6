// createScheduler(config) -> NativeScheduler: setTimesteps, initNoiseSigma,
// inputDivisor, noiseCoefficients, step; plus scaleDiv, axpby, combineBranches.
// Every argument is checked here as well as in src/scheduler, so a direct caller
// of the addon gets a TypeError / RangeError, never a crash.
#include "binding/scheduler_binding.h"

#include <cmath>
#include <cstdint>
#include <string>

#include "binding/errors.h"
#include "binding/registry.h"
#include "core/guidance.h"

namespace ragdiff {
namespace binding {
namespace {

// Per-environment data (each worker_thread loads the addon into its own environment).
struct AddonData {
  Napi::FunctionReference scheduler_ctor;
};

Napi::Function scheduler_ctor(Napi::Env env) { return env.GetInstanceData<AddonData>()->scheduler_ctor.Value(); }

// --- config fields ---------------------------------------------------------------

bool field(Napi::Env env, Napi::Object o, const char* name, Napi::Value* v) {
  *v = o.Get(name);
  if (env.IsExceptionPending()) return false;
  if (v->IsUndefined()) {
    throw_type(env, "INVALID_CONFIG", std::string("config.") + name + " is missing");
    return false;
  }
  return true;
}

bool num_field(Napi::Env env, Napi::Object o, const char* name, double* out, bool allow_nan = false, bool allow_inf = false) {
  Napi::Value v;
  if (!field(env, o, name, &v)) return false;
  if (!v.IsNumber()) {
    throw_type(env, "INVALID_CONFIG", std::string("config.") + name + " must be a number");
    return false;
  }
  *out = v.As<Napi::Number>().DoubleValue();
  if ((std::isnan(*out) && !allow_nan) || (std::isinf(*out) && !allow_inf)) {
    throw_range(env, "INVALID_CONFIG", std::string("config.") + name + " must be finite");
    return false;
  }
  return true;
}

bool int_field(Napi::Env env, Napi::Object o, const char* name, int lo, int hi, int* out) {
  double d;
  if (!num_field(env, o, name, &d)) return false;
  if (std::floor(d) != d || d < lo || d > hi) {
    throw_range(env, "INVALID_CONFIG", std::string("config.") + name + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
    return false;
  }
  *out = static_cast<int>(d);
  return true;
}

bool bool_field(Napi::Env env, Napi::Object o, const char* name, bool* out) {
  Napi::Value v;
  if (!field(env, o, name, &v)) return false;
  if (!v.IsBoolean()) {
    throw_type(env, "INVALID_CONFIG", std::string("config.") + name + " must be a boolean");
    return false;
  }
  *out = v.As<Napi::Boolean>().Value();
  return true;
}

template <class E>
bool enum_field(Napi::Env env, Napi::Object o, const char* name, std::initializer_list<std::pair<const char*, E>> options, E* out) {
  Napi::Value v;
  if (!field(env, o, name, &v)) return false;
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
  std::string allowed;
  for (const auto& p : options) {
    if (s == p.first) {
      *out = p.second;
      return true;
    }
    allowed += std::string(allowed.empty() ? "" : ", ") + "\"" + p.first + "\"";
  }
  throw_range(env, "INVALID_CONFIG", std::string("config.") + name + " must be one of " + allowed);
  return false;
}

bool read_config(Napi::Env env, Napi::Value arg, SchedulerConfig* c) {
  if (!arg.IsObject()) {
    throw_type(env, "INVALID_TYPE", "config must be an object");
    return false;
  }
  Napi::Object o = arg.As<Napi::Object>();
  if (!enum_field<Sampler>(env, o, "sampler",
                           {{"ddim", Sampler::kDdim}, {"euler", Sampler::kEuler}, {"euler-ancestral", Sampler::kEulerAncestral}, {"dpmpp-2m", Sampler::kDpmSolverPP2M},
                            {"pndm", Sampler::kPndm}, {"lcm", Sampler::kLcm}},
                           &c->sampler) ||
      !int_field(env, o, "numTrainTimesteps", 2, 100000, &c->num_train_timesteps) ||
      !enum_field<BetaSchedule>(env, o, "betaSchedule",
                                {{"linear", BetaSchedule::kLinear}, {"scaled_linear", BetaSchedule::kScaledLinear}, {"squaredcos_cap_v2", BetaSchedule::kSquaredCosCapV2}},
                                &c->beta_schedule) ||
      !num_field(env, o, "betaStart", &c->beta_start) || !num_field(env, o, "betaEnd", &c->beta_end) ||
      !enum_field<Prediction>(env, o, "predictionType",
                              {{"epsilon", Prediction::kEpsilon}, {"v_prediction", Prediction::kVPrediction}, {"sample", Prediction::kSample}},
                              &c->prediction) ||
      !enum_field<Spacing>(env, o, "timestepSpacing", {{"leading", Spacing::kLeading}, {"trailing", Spacing::kTrailing}, {"linspace", Spacing::kLinspace}}, &c->spacing) ||
      !int_field(env, o, "stepsOffset", 0, 100000, &c->steps_offset) || !bool_field(env, o, "useKarrasSigmas", &c->use_karras_sigmas) ||
      !num_field(env, o, "eta", &c->eta) || !bool_field(env, o, "clipSample", &c->clip_sample) ||
      !num_field(env, o, "clipSampleRange", &c->clip_sample_range) || !bool_field(env, o, "setAlphaToOne", &c->set_alpha_to_one) ||
      !bool_field(env, o, "rescaleBetasZeroSnr", &c->rescale_betas_zero_snr) ||
      !enum_field<Interpolation>(env, o, "interpolationType", {{"linear", Interpolation::kLinear}, {"log_linear", Interpolation::kLogLinear}}, &c->interpolation) ||
      !bool_field(env, o, "continuousTimesteps", &c->continuous_timesteps) ||
      !num_field(env, o, "sigmaMin", &c->sigma_min, true) || !num_field(env, o, "sigmaMax", &c->sigma_max, true) ||
      !enum_field<FinalSigmas>(env, o, "finalSigmasType", {{"zero", FinalSigmas::kZero}, {"sigma_min", FinalSigmas::kSigmaMin}}, &c->final_sigmas) ||
      !int_field(env, o, "solverOrder", 1, 3, &c->solver_order) ||
      !enum_field<SolverType>(env, o, "solverType", {{"midpoint", SolverType::kMidpoint}, {"heun", SolverType::kHeun}}, &c->solver_type) ||
      !bool_field(env, o, "lowerOrderFinal", &c->lower_order_final) || !bool_field(env, o, "eulerAtFinal", &c->euler_at_final) ||
      !num_field(env, o, "lambdaMinClipped", &c->lambda_min_clipped, false, true))
    return false;
  // PNDM / LCM fields are optional for callers that predate them.
  Napi::Value v = o.Get("skipPrkSteps");
  if (!v.IsUndefined() && !bool_field(env, o, "skipPrkSteps", &c->skip_prk_steps)) return false;
  v = o.Get("originalInferenceSteps");
  if (!v.IsUndefined() && !int_field(env, o, "originalInferenceSteps", 1, 100000, &c->original_inference_steps)) return false;
  v = o.Get("timestepScaling");
  if (!v.IsUndefined() && !num_field(env, o, "timestepScaling", &c->timestep_scaling)) return false;
  Napi::Value tb = o.Get("trainedBetas");
  if (env.IsExceptionPending()) return false;
  if (!tb.IsNull() && !tb.IsUndefined()) {
    if (!tb.IsTypedArray() || tb.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      throw_type(env, "INVALID_CONFIG", "config.trainedBetas must be a Float64Array or null");
      return false;
    }
    auto a = tb.As<Napi::Float64Array>();
    c->trained_betas.assign(a.Data(), a.Data() + a.ElementLength());
    c->beta_schedule = BetaSchedule::kTrained;
  }
  return true;
}

// --- buffers ------------------------------------------------------------------------

bool overlaps(const float* a, size_t na, const float* b, size_t nb) {
  if (!a || !b || na == 0 || nb == 0) return false;
  auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return pa < pb + nb * sizeof(float) && pb < pa + na * sizeof(float);
}

bool check_len(Napi::Env env, const char* name, size_t got, size_t want) {
  if (got == want) return true;
  throw_range(env, "LENGTH_MISMATCH", std::string(name) + " must have " + std::to_string(want) + " elements, got " + std::to_string(got));
  return false;
}

Napi::Value ScaleDiv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  float *x, *out;
  size_t nx, nout;
  double d;
  if (!get_f32(info, 0, "sample", &x, &nx) || !get_finite(info, 1, "divisor", &d) || !get_f32(info, 2, "out", &out, &nout)) return env.Undefined();
  if (!check_len(env, "out", nout, nx)) return env.Undefined();
  if (!(d != 0) || (out != x && overlaps(out, nout, x, nx))) {
    throw_range(env, "INVALID_VALUE", d == 0 ? "divisor must not be 0" : "out must be sample itself or not overlap it");
    return env.Undefined();
  }
  return Napi::Boolean::New(env, scale_div(x, static_cast<float>(d), out, nx));
}

Napi::Value Axpby(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  float *x, *y, *out;
  size_t nx, ny, nout;
  double a, b;
  if (!get_finite(info, 0, "a", &a) || !get_f32(info, 1, "x", &x, &nx) || !get_finite(info, 2, "b", &b) || !get_f32(info, 3, "y", &y, &ny) ||
      !get_f32(info, 4, "out", &out, &nout))
    return env.Undefined();
  if (!check_len(env, "y", ny, nx) || !check_len(env, "out", nout, nx)) return env.Undefined();
  if ((out != x && overlaps(out, nout, x, nx)) || (out != y && overlaps(out, nout, y, ny))) {
    throw_range(env, "INVALID_VALUE", "out must be an input itself or not overlap the inputs");
    return env.Undefined();
  }
  return Napi::Boolean::New(env, axpby(static_cast<float>(a), x, static_cast<float>(b), y, out, nx));
}

Napi::Value CombineBranches(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  float *br, *out;
  double* w;
  size_t nbr, nw, nout;
  if (!get_f32(info, 0, "branches", &br, &nbr) || !get_f64(info, 1, "weights", &w, &nw) || !get_f32(info, 2, "out", &out, &nout)) return env.Undefined();
  if (nw < 1 || nw > kMaxBranches) {
    throw_range(env, "OUT_OF_RANGE", "weights must have 1.." + std::to_string(kMaxBranches) + " entries");
    return env.Undefined();
  }
  for (size_t k = 0; k < nw; ++k) {
    if (!std::isfinite(w[k])) {
      throw_range(env, "NON_FINITE", "weights[" + std::to_string(k) + "] must be finite");
      return env.Undefined();
    }
  }
  if (!check_len(env, "branches", nbr, nout * nw)) return env.Undefined();
  if (out != br && overlaps(out, nout, br, nbr)) {
    throw_range(env, "INVALID_VALUE", "out must be the first branch itself or not overlap the branches");
    return env.Undefined();
  }
  return Napi::Boolean::New(env, combine_branches(br, nw, w, nout, out));
}

Napi::Value CreateScheduler(const Napi::CallbackInfo& info) {
  return scheduler_ctor(info.Env()).New({info[0]});
}

}  // namespace

// --- NativeScheduler ------------------------------------------------------------------

Napi::Function NativeScheduler::Define(Napi::Env env) {
  return DefineClass(env, "NativeScheduler",
                     {InstanceMethod("setTimesteps", &NativeScheduler::SetTimesteps),
                      InstanceMethod("initNoiseSigma", &NativeScheduler::InitNoiseSigma),
                      InstanceMethod("inputDivisor", &NativeScheduler::InputDivisor),
                      InstanceMethod("noiseCoefficients", &NativeScheduler::NoiseCoefficients),
                      InstanceMethod("step", &NativeScheduler::Step),
                      InstanceMethod("pndmPlan", &NativeScheduler::PndmPlanAt)});
}

NativeScheduler::NativeScheduler(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeScheduler>(info) {
  Napi::Env env = info.Env();
  SchedulerConfig cfg;
  if (!read_config(env, info[0], &cfg)) return;
  std::string err;
  Status st = schedule_init(cfg, &schedule_, &err);
  if (st != Status::kOk) {
    throw_status(env, st, err);
    return;
  }
  ready_ = true;
}

Napi::Value NativeScheduler::SetTimesteps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t n;
  if (!get_index(info, 0, "numInferenceSteps", 1e9, &n)) return env.Undefined();
  std::string err;
  Status st = schedule_set_timesteps(&schedule_, static_cast<int>(std::min<uint64_t>(n, 1u << 30)), &err);
  if (st != Status::kOk) {
    throw_status(env, st, err);
    return env.Undefined();
  }
  const Schedule& s = schedule_;
  const size_t N = s.timesteps.size();
  auto ts = Napi::Float64Array::New(env, N);
  for (size_t i = 0; i < N; ++i) ts[i] = s.timesteps[i];
  auto sg = Napi::Float64Array::New(env, s.sigmas.size());
  for (size_t i = 0; i < s.sigmas.size(); ++i) sg[i] = s.sigmas[i];
  // flags per step: 1 = needs noise, 2 = second order when history is held, 4 = keeps x0 as history
  auto flags = Napi::Uint8Array::New(env, N);
  for (size_t i = 0; i < N; ++i) {
    StepCoefficients c;
    uint8_t f = 0;
    if (schedule_step_coefficients(s, static_cast<int>(i), true, &c, &err) == Status::kOk) {
      f = static_cast<uint8_t>((c.uses_noise ? 1 : 0) | (c.uses_history ? 2 : 0) | (c.writes_x0 ? 4 : 0));
    } else {
      f = 128;  // this step is undefined for the configuration; step() will say why
    }
    flags[i] = f;
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("timesteps", ts);
  r.Set("sigmas", sg);
  r.Set("flags", flags);
  r.Set("initNoiseSigma", Napi::Number::New(env, schedule_init_noise_sigma(s)));
  return r;
}

// pndmPlan(stepIndex, storedOutputs, restarted) -> { storeSlot, append, fromSaved, saveSample, weights }
Napi::Value NativeScheduler::PndmPlanAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (schedule_.cfg.sampler != Sampler::kPndm) {
    throw_type(env, "INVALID_STATE", "pndmPlan applies to a pndm scheduler");
    return env.Undefined();
  }
  const int N = schedule_steps(schedule_);
  if (N == 0) {
    throw_error(env, "TIMESTEPS_NOT_SET", "setTimesteps has not been called");
    return env.Undefined();
  }
  uint64_t i, n;
  if (!get_index(info, 0, "stepIndex", N - 1, &i) || !get_index(info, 1, "storedOutputs", 1e9, &n)) return env.Undefined();
  if (info.Length() < 3 || !info[2].IsBoolean()) {
    throw_type(env, "INVALID_TYPE", "restarted must be a boolean");
    return env.Undefined();
  }
  PndmPlan p;
  std::string err;
  Status st = pndm_plan(schedule_, static_cast<int>(i), static_cast<int>(n), info[2].As<Napi::Boolean>().Value(), &p, &err);
  if (st != Status::kOk) {
    throw_status(env, st, err);
    return env.Undefined();
  }
  Napi::Object r = Napi::Object::New(env);
  auto w = Napi::Float64Array::New(env, kPndmSlots);
  for (int k = 0; k < kPndmSlots; ++k) w[k] = p.w[k];
  r.Set("storeSlot", Napi::Number::New(env, p.store_slot));
  r.Set("append", Napi::Boolean::New(env, p.append));
  r.Set("fromSaved", Napi::Boolean::New(env, p.from_saved));
  r.Set("saveSample", Napi::Boolean::New(env, p.save_sample));
  r.Set("weights", w);
  return r;
}

Napi::Value NativeScheduler::InitNoiseSigma(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), schedule_init_noise_sigma(schedule_));
}

Napi::Value NativeScheduler::InputDivisor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t i;
  const int N = schedule_steps(schedule_);
  if (N == 0) {
    throw_error(env, "TIMESTEPS_NOT_SET", "setTimesteps has not been called");
    return env.Undefined();
  }
  if (!get_index(info, 0, "stepIndex", N - 1, &i)) return env.Undefined();
  return Napi::Number::New(env, schedule_input_divisor(schedule_, static_cast<int>(i)));
}

Napi::Value NativeScheduler::NoiseCoefficients(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double i, t;
  if (!get_number(info, 0, "stepIndex", &i) || !get_finite(info, 1, "t", &t)) return env.Undefined();
  if (schedule_.cfg.sampler != Sampler::kDdim && schedule_.cfg.sampler != Sampler::kPndm && schedule_.cfg.sampler != Sampler::kLcm &&
      schedule_steps(schedule_) == 0) {
    throw_error(env, "TIMESTEPS_NOT_SET", "setTimesteps has not been called");
    return env.Undefined();
  }
  float a, b;
  std::string err;
  Status st = schedule_noise_coefficients(schedule_, std::isfinite(i) ? static_cast<int>(i) : -1, t, &a, &b, &err);
  if (st != Status::kOk) {
    throw_status(env, st, err);
    return env.Undefined();
  }
  Napi::Array r = Napi::Array::New(env, 2);
  r.Set(0u, Napi::Number::New(env, a));
  r.Set(1u, Napi::Number::New(env, b));
  return r;
}

bool read_step_args(const Napi::CallbackInfo& info, size_t a0, const Schedule& s, StepCoefficients* c, StepBuffers* b) {
  Napi::Env env = info.Env();
  const int N = schedule_steps(s);
  if (N == 0) {
    throw_error(env, "TIMESTEPS_NOT_SET", "setTimesteps has not been called");
    return false;
  }
  uint64_t i;
  if (!get_index(info, a0, "stepIndex", N - 1, &i)) return false;
  if (!info[a0 + 1].IsBoolean()) {
    throw_type(env, "INVALID_TYPE", "hasHistory must be a boolean");
    return false;
  }
  const bool has_history = info[a0 + 1].As<Napi::Boolean>().Value();
  float *branches, *sample, *noise, *history, *x0, *out;
  double* weights;
  size_t nbr, nw, ns, nn, nh, nx0, nout;
  if (!get_f32(info, a0 + 2, "branches", &branches, &nbr) || !get_f64(info, a0 + 3, "weights", &weights, &nw) ||
      !get_f32(info, a0 + 4, "sample", &sample, &ns) || !get_f32_or_null(info, a0 + 5, "noise", &noise, &nn) ||
      !get_f32_or_null(info, a0 + 6, "history", &history, &nh) || !get_f32_or_null(info, a0 + 7, "x0Out", &x0, &nx0) ||
      !get_f32(info, a0 + 8, "out", &out, &nout))
    return false;
  if (nw < 1 || nw > kMaxBranches) {
    throw_range(env, "OUT_OF_RANGE", "weights must have 1.." + std::to_string(kMaxBranches) + " entries, got " + std::to_string(nw));
    return false;
  }
  for (size_t k = 0; k < nw; ++k) {
    if (!std::isfinite(weights[k])) {
      throw_range(env, "NON_FINITE", "weights[" + std::to_string(k) + "] must be finite");
      return false;
    }
  }
  if (!check_len(env, "branches", nbr, ns * nw) || !check_len(env, "out", nout, ns)) return false;
  std::string err;
  Status st = schedule_step_coefficients(s, static_cast<int>(i), has_history, c, &err);
  if (st != Status::kOk) {
    throw_status(env, st, err);
    return false;
  }
  if (c->uses_noise) {
    if (!noise) {
      throw_type(env, "NOISE_REQUIRED", "noise is required at step " + std::to_string(i));
      return false;
    }
    if (!check_len(env, "noise", nn, ns)) return false;
  } else {
    noise = nullptr;
  }
  if (c->uses_history) {
    if (!history) {
      throw_type(env, "HISTORY_REQUIRED", "history is required at step " + std::to_string(i));
      return false;
    }
    if (!check_len(env, "history", nh, ns)) return false;
  } else {
    history = nullptr;
  }
  if (x0 && !check_len(env, "x0Out", nx0, ns)) return false;
  // out may be the sample itself; otherwise outputs must not overlap any input or each other.
  const bool out_ok = (out == sample) || !overlaps(out, nout, sample, ns);
  if (!out_ok || overlaps(out, nout, branches, nbr) || overlaps(out, nout, noise, nn) || overlaps(out, nout, history, nh) ||
      overlaps(x0, nx0, sample, ns) || overlaps(x0, nx0, branches, nbr) || overlaps(x0, nx0, noise, nn) ||
      overlaps(x0, nx0, history, nh) || overlaps(x0, nx0, out, nout)) {
    throw_range(env, "INVALID_VALUE", "out may be sample itself; otherwise out and x0Out must not overlap the inputs or each other");
    return false;
  }
  b->branches = branches;
  b->n_branches = nw;
  b->weights = weights;
  b->sample = sample;
  b->noise = noise;
  b->history = history;
  b->x0_out = x0;
  b->out = out;
  b->len = ns;
  return true;
}

Napi::Value NativeScheduler::Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  StepCoefficients c;
  StepBuffers b;
  if (!read_step_args(info, 0, schedule_, &c, &b)) return env.Undefined();
  return Napi::Boolean::New(env, apply_step(c, b));
}

NativeScheduler* unwrap_scheduler(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  Napi::Value v = info[i];
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(scheduler_ctor(env))) {
    throw_type(env, "INVALID_TYPE", "scheduler must be a NativeScheduler");
    return nullptr;
  }
  NativeScheduler* s = NativeScheduler::Unwrap(v.As<Napi::Object>());
  if (!s || !s->ready()) {
    throw_type(env, "INVALID_TYPE", "scheduler is not initialised");
    return nullptr;
  }
  return s;
}

void init_scheduler(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = NativeScheduler::Define(env);
  auto* data = new AddonData();
  data->scheduler_ctor = Napi::Persistent(ctor);
  env.SetInstanceData<AddonData>(data);
  exports.Set("NativeScheduler", ctor);
  exports.Set("createScheduler", Napi::Function::New(env, CreateScheduler, "createScheduler"));
  exports.Set("scaleDiv", Napi::Function::New(env, ScaleDiv, "scaleDiv"));
  exports.Set("axpby", Napi::Function::New(env, Axpby, "axpby"));
  exports.Set("combineBranches", Napi::Function::New(env, CombineBranches, "combineBranches"));
}

}  // namespace binding
}  // namespace ragdiff
