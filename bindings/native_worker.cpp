#include "native_worker.h"

#include "core/error.h"

namespace vgb {

struct NativeWorker::Shared {
  Tsfn tsfn;
  int outstanding = 0;  // submitted but not yet delivered (JS thread only)
  bool released = false;
};

struct NativeWorker::Pending {
  std::shared_ptr<Shared> shared;
  Napi::Promise::Deferred deferred;
  Finisher finisher;
  std::string error;
  bool range_error = false;
};

NativeWorker::NativeWorker(Napi::Env env, const std::string& name) {
  shared_ = std::make_shared<Shared>();
  shared_->tsfn = Tsfn::New(env, name, 0, 1);
  shared_->tsfn.Unref(env);  // idle: do not keep the process alive
  thread_ = std::thread([this] { loop(); });
}

NativeWorker::~NativeWorker() { shutdown(); }

void NativeWorker::shutdown() {
  if (stopped_) return;
  {
    std::lock_guard<std::mutex> lk(m_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  shared_->released = true;
  shared_->tsfn.Release();
  stopped_ = true;
}

Napi::Promise NativeWorker::submit(Napi::Env env, Job job) {
  auto deferred = Napi::Promise::Deferred::New(env);
  if (stopped_ || stopping_) {
    deferred.Reject(Napi::Error::New(env, "this object has been disposed; create a new one").Value());
    return deferred.Promise();
  }
  auto* p = new Pending{shared_, deferred, nullptr, {}, false};
  if (shared_->outstanding++ == 0) shared_->tsfn.Ref(env);
  {
    std::lock_guard<std::mutex> lk(m_);
    queue_.emplace_back(std::move(job), p);
  }
  cv_.notify_one();
  return deferred.Promise();
}

void NativeWorker::loop() {
  for (;;) {
    std::pair<Job, Pending*> item;
    {
      std::unique_lock<std::mutex> lk(m_);
      cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    Pending* p = item.second;
    try {
      p->finisher = item.first();
    } catch (const vg::ArgumentError& e) {
      p->error = e.what();
      p->range_error = true;
    } catch (const std::exception& e) {
      p->error = e.what();
    } catch (...) {
      p->error = "unknown native error";
    }
    shared_->tsfn.BlockingCall(p);  // unbounded queue: never blocks
  }
}

void NativeWorker::deliver(Napi::Env env, Napi::Function, std::nullptr_t*, Pending* p) {
  std::unique_ptr<Pending> own(p);
  if (!env) return;  // the environment is shutting down
  Shared& s = *p->shared;
  if (--s.outstanding == 0 && !s.released) s.tsfn.Unref(env);
  if (!p->error.empty()) {
    Napi::Error err = p->range_error ? Napi::RangeError::New(env, p->error) : Napi::Error::New(env, p->error);
    p->deferred.Reject(err.Value());
    return;
  }
  try {
    p->deferred.Resolve(p->finisher ? p->finisher(env) : env.Undefined());
  } catch (const Napi::Error& e) {
    p->deferred.Reject(e.Value());
  } catch (const std::exception& e) {
    p->deferred.Reject(Napi::Error::New(env, e.what()).Value());
  }
}

}  // namespace vgb
