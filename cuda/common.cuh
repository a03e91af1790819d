// Device helpers shared by the kernels: bf16 <-> f32 and reductions.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <unordered_set>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace tsr {

using bf16 = __nv_bfloat16;

// Storage is bf16, arithmetic f32: load widens, store rounds once (to nearest even).
__device__ __forceinline__ float load(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ bf16 round_bf16(float x) { return __float2bfloat16_rn(x); }

constexpr float kInfinity = __builtin_huge_valf();
constexpr unsigned kFullWarp = 0xffffffffu;

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullWarp, v, offset);
  return v;
}

// Max over the warp, NaNs dropped (fmax), float or double
template <typename T>
__device__ __forceinline__ T warp_max(T v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmax(v, __shfl_xor_sync(kFullWarp, v, offset));
  return v;
}

// Sum over the block (float, or double where the sum must be), returned to every thread;
// blockDim.x must be a multiple of 32.
template <typename T>
__device__ __forceinline__ T block_sum(T v) {
  __shared__ T partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // a previous call's readers are done with `partial`
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < (int)(blockDim.x >> 5) ? partial[lane] : T(0);
  return warp_sum(v);
}

// (value, index) of the better of two candidates: the larger value, the smaller index on ties
// (argmax's order, and logprobs' top tokens')
__device__ __forceinline__ void keep_better(float& value, int& index, float other_value, int other_index) {
  if (other_value > value || (other_value == value && other_index < index)) {
    value = other_value;
    index = other_index;
  }
}

// Max over the block, returned to every thread; blockDim.x must be a multiple of 32.
__device__ __forceinline__ float block_max(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < (int)(blockDim.x >> 5) ? partial[lane] : -kInfinity;
  return warp_max(v);
}

// a shared-memory pointer as the 32-bit address PTX's shared-memory operands take
__device__ __forceinline__ uint32_t shared_address(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

// Programmatic dependent launch (sm_90). A kernel launched with the programmatic-serialization
// attribute (launch_kernel with `overlap`: the GEMVs, and the norms after them) may start while
// the kernel before it still runs: what it does before wait_for_prerequisites must not touch that
// kernel's outputs (the GEMV streams its weights there), and the wait returns once that kernel has
// finished and its writes are visible. allow_dependents, called first thing by the kernels that
// precede one, lets the dependent start as soon as every block of this one runs. Both are no-ops
// where no dependent launch is involved.
__device__ __forceinline__ void allow_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ void wait_for_prerequisites() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Internal linkage, for these two as for gemv.cuh's kernels: a tool that includes this header keeps
// its own copy, and the library's calls never reach the tool's, which would ask the tool's CUDA
// runtime about the library's kernels (cudaErrorInvalidResourceHandle).
namespace {

// An SM's split of its unified memory between L1 and shared memory is set when it takes a block
// of a kernel that no split it has fits, and changes only once the SM is empty. Kernels that
// overlap ask for the largest shared part: an SM set up for a norm or attention must still take
// the next GEMV's block (about 145 KB) while those run (TSR_CARVEOUT_MAX=0: the driver's choice).
// Once per kernel and thread.
inline cudaError_t prefer_shared_memory(const void* kernel) {
  static const bool on = [] {
    const char* value = getenv("TSR_CARVEOUT_MAX");
    return value == nullptr || strcmp(value, "0") != 0;
  }();
  thread_local std::unordered_set<const void*> done;
  if (!on || !done.insert(kernel).second) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared);
}

// kernel<<<grid, block, shared, stream>>>(args...), or with `overlap` as a programmatic dependent
// of the kernel before it on the stream: it may start once that kernel has allowed it, and must
// wait_for_prerequisites before it reads that kernel's outputs or writes anything.
template <typename... Params, typename... Args>
cudaError_t launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t stream, bool overlap, Args... args) {
  if (!overlap) {
    kernel<<<grid, block, shared, stream>>>(args...);
    return cudaGetLastError();
  }
  if (const cudaError_t error = prefer_shared_memory(reinterpret_cast<const void*>(kernel)); error != cudaSuccess) return error;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared;
  config.stream = stream;
  cudaLaunchAttribute dependent[1];
  dependent[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  dependent[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = dependent;
  config.numAttrs = 1;
  return cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
}

}  // namespace

// Threads for a kernel that walks one row of n elements per block: enough for one element
// each up to 1024, in whole warps.
inline int row_threads(int n) {
  const int warps = (n + 31) / 32;
  return 32 * (warps < 1 ? 1 : warps > 32 ? 32 : warps);
}

// Blocks of `threads` for a grid-stride loop over n elements: one element per thread, capped
// where more blocks only add scheduling (the loop covers the rest).
inline unsigned grid_blocks(size_t n, int threads) {
  const size_t blocks = (n + threads - 1) / threads;
  return (unsigned)(blocks < 1 ? 1 : blocks > 65536 ? 65536 : blocks);
}

}  // namespace tsr
