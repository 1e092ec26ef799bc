// A dedicated native thread that runs heavy jobs (generation, forward/backward, updates) in submission
// order, off the event loop and off libuv's small shared pool. Each job resolves or rejects a Promise on
// the JS thread through a thread-safe function. The thread keeps the process alive only while jobs are
// pending.
#pragma once
#include <napi.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace vgb {

class NativeWorker {
 public:
  // Runs on the JS thread after the job finishes; builds the resolved value.
  using Finisher = std::function<Napi::Value(Napi::Env)>;
  // Runs on the worker thread; returns the finisher. Exceptions become rejections.
  using Job = std::function<Finisher()>;

  NativeWorker(Napi::Env env, const std::string& name);
  ~NativeWorker();
  NativeWorker(const NativeWorker&) = delete;
  NativeWorker& operator=(const NativeWorker&) = delete;

  Napi::Promise submit(Napi::Env env, Job job);
  // Finishes queued jobs, then stops the thread. Idempotent; called by the owner's dispose and destructor.
  void shutdown();
  bool stopped() const { return stopped_; }

 private:
  struct Pending;
  struct Shared;
  void loop();
  static void deliver(Napi::Env env, Napi::Function, std::nullptr_t*, Pending* p);

  using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Pending, &NativeWorker::deliver>;
  // State that deliveries still queued after shutdown may touch; outlives this object.
  std::shared_ptr<Shared> shared_;
  std::thread thread_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::pair<Job, Pending*>> queue_;
  bool stopping_ = false;
  bool stopped_ = false;
};

}  // namespace vgb
