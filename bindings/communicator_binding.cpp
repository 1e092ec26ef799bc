// CommunicatorHandle: a collective communicator (native/dist/communicator.h, Gloo or NCCL) owned by JS.
// createCommunicator(options) rendezvouses off the event loop and resolves to a handle. Each handle owns ONE
// dedicated native thread (NativeWorker), so collectives never block the event loop and run in submission order
// (every rank must issue the same sequence). Operations work in place on the caller's typed array, which a
// reference keeps alive until the Promise settles; the caller must not touch it meanwhile.
// Errors: native failures (timeouts, dead peers) reject with Error carrying the native message; bad arguments
// reject/throw RangeError or TypeError naming the field.
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "communicator_binding.h"
#include "dist/communicator.h"
#include "native_worker.h"

namespace vgb {
namespace {

using vg::dist::Communicator;
using vg::dist::ReduceOp;

// Marks CommunicatorHandle objects so that communicator_info / run_on_communicator can check what they were given.
constexpr napi_type_tag kCommunicatorTag = {0x7a3c51e2d94b4f06ULL, 0x9b1e0c7d5a2f8364ULL};

struct CommState {
  std::unique_ptr<Communicator> comm;  // touched only on the worker thread (and by the finalizer after shutdown)
};

// A job that reports its own failure through the finisher, so the buffer reference is always released on the JS
// thread (a job that threw would otherwise drop its captures on the worker thread).
using Refs = std::shared_ptr<std::vector<Napi::Reference<Napi::Value>>>;

template <typename Op>
NativeWorker::Job job_with_ref(Refs ref, Op op) {
  return [ref, op]() -> NativeWorker::Finisher {
    std::string err;
    bool range = false;
    try {
      op();
    } catch (const vg::ArgumentError& e) {
      err = e.what();
      range = true;
    } catch (const std::exception& e) {
      err = e.what();
    }
    return [ref, err, range](Napi::Env env) -> Napi::Value {
      ref->clear();
      if (!err.empty()) {
        if (range) throw Napi::RangeError::New(env, err);
        throw Napi::Error::New(env, err);
      }
      return env.Undefined();
    };
  };
}

std::vector<int64_t> read_counts(Napi::Env env, const Napi::Value& v, int world, size_t length) {
  if (!v.IsArray()) throw_type(env, "counts must be an array of " + std::to_string(world) + " integers");
  Napi::Array a = v.As<Napi::Array>();
  if (static_cast<int>(a.Length()) != world)
    throw_range(env, "counts has " + std::to_string(a.Length()) + " entries, expected worldSize=" + std::to_string(world));
  std::vector<int64_t> c(a.Length());
  int64_t total = 0;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value x = a.Get(i);
    if (!x.IsNumber()) throw_type(env, "counts[" + std::to_string(i) + "] must be a number");
    const double d = x.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0)
      throw_range(env, "counts[" + std::to_string(i) + "] must be a non-negative integer, got " + std::to_string(d));
    c[i] = static_cast<int64_t>(d);
    total += c[i];
  }
  if (total != static_cast<int64_t>(length))
    throw_range(env, "counts sum to " + std::to_string(total) + " but buf has length " + std::to_string(length));
  return c;
}

class CommunicatorHandle : public Napi::ObjectWrap<CommunicatorHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "CommunicatorHandle",
                       {InstanceMethod<&CommunicatorHandle::AllReduce>("allReduce"),
                        InstanceMethod<&CommunicatorHandle::ReduceScatter>("reduceScatter"),
                        InstanceMethod<&CommunicatorHandle::AllGather>("allGather"),
                        InstanceMethod<&CommunicatorHandle::Broadcast>("broadcast"),
                        InstanceMethod<&CommunicatorHandle::Barrier>("barrier"),
                        InstanceMethod<&CommunicatorHandle::Destroy>("destroy"),
                        InstanceAccessor<&CommunicatorHandle::Rank>("rank"),
                        InstanceAccessor<&CommunicatorHandle::WorldSize>("worldSize"),
                        InstanceAccessor<&CommunicatorHandle::Backend>("backend")});
  }

  // Only createCommunicator constructs handles (it passes the parsed options through `pending_`).
  explicit CommunicatorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CommunicatorHandle>(info) {
    state_ = std::make_shared<CommState>();
    worker_ = std::make_unique<NativeWorker>(info.Env(), "vlm-grpo communicator");
    info.This().As<Napi::Object>().TypeTag(&kCommunicatorTag);
  }

  CommunicatorInfo info_or_throw(Napi::Env env, const char* what) const {
    if (!usable()) throw Napi::Error::New(env, std::string(what) + ": this communicator has been destroyed; create a new one");
    return CommunicatorInfo{rank_, world_, backend_};
  }

  // Native work on this communicator's thread (run_on_communicator).
  Napi::Promise run_native(Napi::Env env, std::function<void(Communicator&)> fn) {
    auto st = state_;
    return worker_->submit(env, job_with_ref(keep(nullptr), [st, fn] { fn(*st->comm); }));
  }

  ~CommunicatorHandle() override {
    if (worker_) worker_->shutdown();  // finishes queued collectives first
    state_->comm.reset();
  }

  Napi::Promise Start(Napi::Env env, const vg::dist::RendezvousOptions& o, const std::string& backend, int device) {
    rank_ = o.rank;
    world_ = o.world_size;
    backend_ = backend;
    auto st = state_;
    auto self = std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(Value().As<Napi::Value>()));
    return worker_->submit(env, [st, o, backend, device, self]() -> NativeWorker::Finisher {
      std::string err;
      bool range = false;
      try {
        st->comm = backend == "nccl" ? vg::dist::create_nccl_communicator(o, device) : vg::dist::create_gloo_communicator(o);
      } catch (const vg::ArgumentError& e) {
        err = e.what();
        range = true;
      } catch (const std::exception& e) {
        err = e.what();
      }
      return [self, err, range](Napi::Env env) -> Napi::Value {
        Napi::Value v = self->Value();
        self->Reset();
        if (!err.empty()) {
          if (range) throw Napi::RangeError::New(env, err);
          throw Napi::Error::New(env, err);
        }
        return v;
      };
    });
  }

 private:
  Napi::Promise rejected(Napi::Env env, const std::string& msg) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(Napi::Error::New(env, msg).Value());
    return d.Promise();
  }

  // References released on the JS thread when the operation settles: the typed array being written, and this handle
  // (so it is not finalized, which would wait for the queued operation, while an operation is pending).
  Refs keep(const Napi::Value* buf) {
    auto r = std::make_shared<std::vector<Napi::Reference<Napi::Value>>>();
    if (buf) r->push_back(Napi::Persistent(*buf));
    r->push_back(Napi::Persistent(Value().As<Napi::Value>()));
    return r;
  }

  bool usable() const { return !destroyed_ && worker_ && !worker_->stopped(); }
  std::string destroyed_msg(const char* op) const {
    return std::string(op) + ": this communicator has been destroyed; create a new one";
  }

  // buf argument as a typed array of one of the allowed kinds.
  static Napi::TypedArray typed_arg(const Napi::CallbackInfo& info, const char* op, const char* kinds) {
    if (info.Length() < 1 || !info[0].IsTypedArray()) throw_type(info.Env(), std::string(op) + ": buf must be a " + kinds);
    return info[0].As<Napi::TypedArray>();
  }

  Napi::Value AllReduce(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::TypedArray t = typed_arg(info, "allReduce", "Float32Array or Float64Array");
    const auto kind = t.TypedArrayType();
    if (kind != napi_float32_array && kind != napi_float64_array)
      throw_type(env, "allReduce: buf must be a Float32Array or Float64Array");
    ReduceOp op = ReduceOp::Sum;
    if (info.Length() >= 2 && !info[1].IsUndefined()) {
      if (!info[1].IsString()) throw_type(env, "allReduce: op must be 'sum', 'max' or 'min'");
      const std::string s = info[1].As<Napi::String>().Utf8Value();
      if (s == "sum") op = ReduceOp::Sum;
      else if (s == "max") op = ReduceOp::Max;
      else if (s == "min") op = ReduceOp::Min;
      else throw_range(env, "allReduce: op must be 'sum', 'max' or 'min', got '" + s + "'");
    }
    if (!usable()) return rejected(env, destroyed_msg("allReduce"));
    const Napi::Value tv = t;
    Refs ref = keep(&tv);
    const int64_t n = static_cast<int64_t>(t.ElementLength());
    auto st = state_;
    if (kind == napi_float32_array) {
      float* p = t.As<Napi::Float32Array>().Data();
      return worker_->submit(env, job_with_ref(ref, [st, p, n, op] { st->comm->all_reduce(p, n, op); }));
    }
    double* p = t.As<Napi::Float64Array>().Data();
    return worker_->submit(env, job_with_ref(ref, [st, p, n, op] { st->comm->all_reduce(p, n, op); }));
  }

  template <bool Scatter>
  Napi::Value CountsOp(const Napi::CallbackInfo& info, const char* name) {
    Napi::Env env = info.Env();
    Napi::TypedArray t = typed_arg(info, name, "Float32Array");
    if (t.TypedArrayType() != napi_float32_array) throw_type(env, std::string(name) + ": buf must be a Float32Array");
    std::vector<int64_t> counts = read_counts(env, info.Length() >= 2 ? info[1] : env.Undefined(), world_, t.ElementLength());
    if (!usable()) return rejected(env, destroyed_msg(name));
    const Napi::Value tv = t;
    Refs ref = keep(&tv);
    float* p = t.As<Napi::Float32Array>().Data();
    auto st = state_;
    return worker_->submit(env, job_with_ref(ref, [st, p, counts] {
      if (Scatter) st->comm->reduce_scatter(p, counts);
      else st->comm->all_gather(p, counts);
    }));
  }

  Napi::Value ReduceScatter(const Napi::CallbackInfo& info) { return CountsOp<true>(info, "reduceScatter"); }
  Napi::Value AllGather(const Napi::CallbackInfo& info) { return CountsOp<false>(info, "allGather"); }

  Napi::Value Broadcast(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::TypedArray t = typed_arg(info, "broadcast", "Float32Array or Uint8Array");
    const auto kind = t.TypedArrayType();
    if (kind != napi_float32_array && kind != napi_uint8_array)
      throw_type(env, "broadcast: buf must be a Float32Array or Uint8Array");
    if (info.Length() < 2 || !info[1].IsNumber()) throw_type(env, "broadcast: root must be a number");
    const double r = info[1].As<Napi::Number>().DoubleValue();
    if (r != std::floor(r) || r < 0 || r >= world_)
      throw_range(env, "broadcast: root=" + std::to_string(r) + " must be an integer in [0, worldSize=" +
                           std::to_string(world_) + ")");
    const int root = static_cast<int>(r);
    if (!usable()) return rejected(env, destroyed_msg("broadcast"));
    const Napi::Value tv = t;
    Refs ref = keep(&tv);
    const int64_t n = static_cast<int64_t>(t.ElementLength());
    auto st = state_;
    if (kind == napi_float32_array) {
      float* p = t.As<Napi::Float32Array>().Data();
      return worker_->submit(env, job_with_ref(ref, [st, p, n, root] { st->comm->broadcast(p, n, root); }));
    }
    uint8_t* p = t.As<Napi::Uint8Array>().Data();
    return worker_->submit(env, job_with_ref(ref, [st, p, n, root] { st->comm->broadcast(p, n, root); }));
  }

  Napi::Value Barrier(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!usable()) return rejected(env, destroyed_msg("barrier"));
    auto st = state_;
    return worker_->submit(env, job_with_ref(keep(nullptr), [st] { st->comm->barrier(); }));
  }

  // Idempotent: queued collectives finish first, then the communicator (sockets, store server) is freed.
  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (destroyed_ || !worker_ || worker_->stopped()) {
      auto d = Napi::Promise::Deferred::New(env);
      d.Resolve(env.Undefined());
      return d.Promise();
    }
    destroyed_ = true;
    auto st = state_;
    return worker_->submit(env, job_with_ref(keep(nullptr), [st] { st->comm.reset(); }));
  }

  Napi::Value Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), rank_); }
  Napi::Value WorldSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), world_); }
  Napi::Value Backend(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), backend_); }

  std::shared_ptr<CommState> state_;
  std::unique_ptr<NativeWorker> worker_;
  bool destroyed_ = false;
  int rank_ = 0, world_ = 1;
  std::string backend_;
};

// createCommunicator({ backend, rank, worldSize, masterAddr, masterPort, timeoutMs, cudaDevice?, localAddr? })
Napi::Value CreateCommunicator(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = arg_object(info, "createCommunicator");
  const std::string backend = get_string(o, "backend", "gloo");
  if (backend != "gloo" && backend != "nccl") throw_range(env, "backend must be 'gloo' or 'nccl', got '" + backend + "'");
  vg::dist::RendezvousOptions r;
  r.world_size = static_cast<int>(get_int(o, "worldSize", NAN, 1, 1 << 20));
  r.rank = static_cast<int>(get_int(o, "rank", NAN, 0, r.world_size - 1));
  r.master_addr = get_string(o, "masterAddr", "127.0.0.1");
  if (r.master_addr.empty()) throw_range(env, "masterAddr must not be empty");
  r.master_port = static_cast<int>(get_int(o, "masterPort", 29500, 1, 65535));
  const double timeout_ms = get_number(o, "timeoutMs", 300000);
  if (!(timeout_ms > 0) || timeout_ms > 1e9) throw_range(env, "timeoutMs must be in (0, 1e9], got " + std::to_string(timeout_ms));
  r.timeout_s = timeout_ms / 1000.0;
  r.iface_addr = get_string(o, "localAddr", "");
  const int device = static_cast<int>(get_int(o, "cudaDevice", 0, 0, 1024));
  auto* ctor = static_cast<Napi::FunctionReference*>(info.Data());
  Napi::Object handle = ctor->New({});
  return CommunicatorHandle::Unwrap(handle)->Start(env, r, backend, device);
}

CommunicatorHandle* unwrap_handle(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kCommunicatorTag))
    throw_type(env, std::string(what) + " must be a communicator handle (from createCommunicator)");
  return CommunicatorHandle::Unwrap(v.As<Napi::Object>());
}

}  // namespace

CommunicatorInfo communicator_info(Napi::Env env, const Napi::Value& handle, const char* what) {
  return unwrap_handle(env, handle, what)->info_or_throw(env, what);
}

Napi::Promise run_on_communicator(Napi::Env env, const Napi::Value& handle, const char* what,
                                  std::function<void(vg::dist::Communicator&)> fn) {
  CommunicatorHandle* h = unwrap_handle(env, handle, what);
  h->info_or_throw(env, what);
  return h->run_native(env, std::move(fn));
}

void register_communicator(Napi::Env env, Napi::Object exports) {
  auto* ctor = new Napi::FunctionReference(Napi::Persistent(CommunicatorHandle::Define(env)));
  env.AddCleanupHook([ctor] { delete ctor; });
  exports.Set("createCommunicator", Napi::Function::New(env, CreateCommunicator, "createCommunicator", ctor));
}

}  // namespace vgb
