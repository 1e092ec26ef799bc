// The few NCCL C entry points we call, declared by us (no NCCL headers are needed to build): the library itself,
// libnccl.so.2, is loaded with dlopen at run time (nccl_communicator.cpp). Types and values follow nccl.h of NCCL 2.x
// (ABI-stable across 2.x releases). The CUDA stream is passed as an opaque pointer (cudaStream_t is a pointer).
#pragma once
#include <cstddef>

namespace vg::dist::nccl {

using ncclComm_t = struct ncclComm*;
constexpr int kUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES
struct ncclUniqueId {
  char internal[kUniqueIdBytes];
};

enum ncclResult_t {
  ncclSuccess = 0,
  ncclUnhandledCudaError = 1,
  ncclSystemError = 2,
  ncclInternalError = 3,
  ncclInvalidArgument = 4,
  ncclInvalidUsage = 5,
  ncclRemoteError = 6,
  ncclInProgress = 7,
};

enum ncclRedOp_t { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3 };
enum ncclDataType_t { ncclInt8 = 0, ncclUint8 = 1, ncclInt32 = 2, ncclFloat32 = 7, ncclFloat64 = 8 };

using StreamPtr = void*;

// Function-pointer types of the entry points, resolved with dlsym by name.
using GetUniqueIdFn = ncclResult_t (*)(ncclUniqueId*);
using CommInitRankFn = ncclResult_t (*)(ncclComm_t*, int, ncclUniqueId, int);
using AllReduceFn = ncclResult_t (*)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, StreamPtr);
using ReduceScatterFn = ncclResult_t (*)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, StreamPtr);
using AllGatherFn = ncclResult_t (*)(const void*, void*, size_t, ncclDataType_t, ncclComm_t, StreamPtr);
using BroadcastFn = ncclResult_t (*)(const void*, void*, size_t, ncclDataType_t, int, ncclComm_t, StreamPtr);
using CommDestroyFn = ncclResult_t (*)(ncclComm_t);
using CommAbortFn = ncclResult_t (*)(ncclComm_t);
using GetErrorStringFn = const char* (*)(ncclResult_t);
using CommGetAsyncErrorFn = ncclResult_t (*)(ncclComm_t, ncclResult_t*);
using GetVersionFn = ncclResult_t (*)(int*);

struct Api {
  void* lib = nullptr;
  GetUniqueIdFn ncclGetUniqueId = nullptr;
  CommInitRankFn ncclCommInitRank = nullptr;
  AllReduceFn ncclAllReduce = nullptr;
  ReduceScatterFn ncclReduceScatter = nullptr;
  AllGatherFn ncclAllGather = nullptr;
  BroadcastFn ncclBroadcast = nullptr;
  CommDestroyFn ncclCommDestroy = nullptr;
  CommAbortFn ncclCommAbort = nullptr;
  GetErrorStringFn ncclGetErrorString = nullptr;
  CommGetAsyncErrorFn ncclCommGetAsyncError = nullptr;
  GetVersionFn ncclGetVersion = nullptr;
};

// Loads libnccl.so.2 once per process (thread-safe); throws vg::Error with the install hint when it is missing or
// lacks an entry point. The library stays loaded for the life of the process.
const Api& load_api();

// True when libnccl.so.2 can be loaded here (used by tests to decide what to expect).
bool library_available();

}  // namespace vg::dist::nccl
