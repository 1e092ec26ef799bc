// Shared helpers for the N-API layer: reading typed arrays and options from a JS object with errors that
// name the field and the numbers, creating output arrays, and mapping native exceptions to JS errors.
// Bindings stay thin: convert, check lengths, call native/, convert back.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "core/error.h"

namespace vgb {

template <typename T>
struct View {
  T* data = nullptr;
  size_t length = 0;
};

[[noreturn]] inline void throw_type(Napi::Env env, const std::string& msg) {
  throw Napi::TypeError::New(env, msg);
}
[[noreturn]] inline void throw_range(Napi::Env env, const std::string& msg) {
  throw Napi::RangeError::New(env, msg);
}

template <typename T>
constexpr napi_typedarray_type typed_array_kind();
template <> constexpr napi_typedarray_type typed_array_kind<float>() { return napi_float32_array; }
template <> constexpr napi_typedarray_type typed_array_kind<double>() { return napi_float64_array; }
template <> constexpr napi_typedarray_type typed_array_kind<int32_t>() { return napi_int32_array; }
template <> constexpr napi_typedarray_type typed_array_kind<uint8_t>() { return napi_uint8_array; }
template <> constexpr napi_typedarray_type typed_array_kind<uint32_t>() { return napi_uint32_array; }

template <typename T>
const char* typed_array_name();
template <> inline const char* typed_array_name<float>() { return "Float32Array"; }
template <> inline const char* typed_array_name<double>() { return "Float64Array"; }
template <> inline const char* typed_array_name<int32_t>() { return "Int32Array"; }
template <> inline const char* typed_array_name<uint8_t>() { return "Uint8Array"; }
template <> inline const char* typed_array_name<uint32_t>() { return "Uint32Array"; }

// obj[field] as a typed array of T (read in place, no copy). `expected` >= 0 checks the length.
// Absent: TypeError unless `optional` (then an empty view). Wrong kind: TypeError. Wrong length: RangeError.
template <typename T>
View<T> get_array(const Napi::Object& obj, const char* field, int64_t expected = -1, bool optional = false) {
  Napi::Env env = obj.Env();
  Napi::Value v = obj.Get(field);
  if (v.IsUndefined() || v.IsNull()) {
    if (optional) return {};
    throw_type(env, std::string(field) + " is required (a " + typed_array_name<T>() + ")");
  }
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != typed_array_kind<T>())
    throw_type(env, std::string(field) + " must be a " + typed_array_name<T>());
  auto arr = v.As<Napi::TypedArrayOf<T>>();
  if (expected >= 0 && static_cast<int64_t>(arr.ElementLength()) != expected)
    throw_range(env, std::string(field) + " has length " + std::to_string(arr.ElementLength()) + ", expected " +
                         std::to_string(expected));
  return {arr.Data(), arr.ElementLength()};
}

// obj[field] as a finite number; `def` is used when absent (NaN def means required).
inline double get_number(const Napi::Object& obj, const char* field, double def = NAN) {
  Napi::Env env = obj.Env();
  Napi::Value v = obj.Get(field);
  if (v.IsUndefined() || v.IsNull()) {
    if (std::isnan(def)) throw_type(env, std::string(field) + " is required (a number)");
    return def;
  }
  if (!v.IsNumber()) throw_type(env, std::string(field) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) throw_range(env, std::string(field) + " must be finite, got " + std::to_string(d));
  return d;
}

// obj[field] as an integer in [lo, hi].
inline int64_t get_int(const Napi::Object& obj, const char* field, double def, int64_t lo, int64_t hi) {
  double d = get_number(obj, field, def);
  if (d != std::floor(d) || d < static_cast<double>(lo) || d > static_cast<double>(hi))
    throw_range(obj.Env(), std::string(field) + " must be an integer in [" + std::to_string(lo) + ", " +
                               std::to_string(hi) + "], got " + std::to_string(d));
  return static_cast<int64_t>(d);
}

inline bool get_bool(const Napi::Object& obj, const char* field, bool def) {
  Napi::Value v = obj.Get(field);
  if (v.IsUndefined() || v.IsNull()) return def;
  if (!v.IsBoolean()) throw_type(obj.Env(), std::string(field) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

inline std::string get_string(const Napi::Object& obj, const char* field, const char* def = nullptr) {
  Napi::Value v = obj.Get(field);
  if (v.IsUndefined() || v.IsNull()) {
    if (!def) throw_type(obj.Env(), std::string(field) + " is required (a string)");
    return def;
  }
  if (!v.IsString()) throw_type(obj.Env(), std::string(field) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

inline Napi::Object arg_object(const Napi::CallbackInfo& info, const char* fn) {
  if (info.Length() < 1 || !info[0].IsObject())
    throw_type(info.Env(), std::string(fn) + " expects one options object");
  return info[0].As<Napi::Object>();
}

// A new JS-owned typed array of n elements (zero-filled).
template <typename T>
Napi::TypedArrayOf<T> new_array(Napi::Env env, size_t n) {
  return Napi::TypedArrayOf<T>::New(env, n);
}

// Runs fn, turning native exceptions into JS errors: vg::ArgumentError -> RangeError, others -> Error.
template <typename F>
auto guard(Napi::Env env, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const vg::ArgumentError& e) {
    throw Napi::RangeError::New(env, e.what());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

}  // namespace vgb
