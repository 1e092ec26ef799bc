// Native access to a JS communicator handle (communicator_binding.cpp) for other bindings: model_binding.cpp queues
// the bucketed gradient collectives of a backward on the communicator's own thread without a JS round trip per bucket.
#pragma once
#include <napi.h>

#include <functional>
#include <string>

#include "dist/communicator.h"

namespace vgb {

struct CommunicatorInfo {
  int rank = 0, world = 1;
  std::string backend;
};

// Rank, world size and backend of `handle`; throws TypeError when it is not a handle from createCommunicator and
// Error when it has been destroyed. `what` names the argument in messages.
CommunicatorInfo communicator_info(Napi::Env env, const Napi::Value& handle, const char* what);

// Queues fn(comm) on the communicator's thread, after every operation queued before it (the same FIFO as the JS
// collectives, so all ranks keep one order). The Promise settles when fn returns (rejects with its error); the handle
// is kept alive until then. Throws like communicator_info.
Napi::Promise run_on_communicator(Napi::Env env, const Napi::Value& handle, const char* what,
                                  std::function<void(vg::dist::Communicator&)> fn);

}  // namespace vgb
