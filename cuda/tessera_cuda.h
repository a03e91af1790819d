/*
 * libtessera_cuda: the C ABI of Tessera's CUDA kernels, bound from TypeScript through bun:ffi
 * (ffi/). Every function returns a status (TSR_OK or one of the codes below) and never exits;
 * after a failure, tsr_last_error() gives the failing call's message (per thread).
 *
 * Storage. Activations, weights and the KV cache are bf16 (`tsr_bf16`); every kernel computes
 * in f32 and rounds once when it stores. The catalog's `f32` tensors (rope's inverse
 * frequencies) are f32, ids and indices int32. Pointers are device addresses from tsr_malloc.
 *
 * Kernels. One function per entry of src/kernels/catalog.ts, named tsr_<entry>, taking the
 * context and then the catalog's arguments in the catalog's order (tensors, then scalars),
 * with the catalog's semantics. Kernels are enqueued on the context's stream and return
 * before they run: a fault inside one surfaces at the next call that waits (tsr_read*,
 * tsr_synchronize). test/cuda-abi.test.ts checks these declarations against the catalog.
 */
#ifndef TESSERA_CUDA_H
#define TESSERA_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#include <cuda_bf16.h>
typedef __nv_bfloat16 tsr_bf16;
#else
typedef uint16_t tsr_bf16; /* the bits of a bfloat16 */
#endif

#ifdef __cplusplus
extern "C" {
#endif

enum {
  TSR_OK = 0,
  TSR_INVALID_ARGUMENT = 1,
  TSR_CUDA_ERROR = 2,
  TSR_BLAS_ERROR = 3,
  TSR_UNSUPPORTED = 4
};

/* one device, its stream, its cuBLAS handle and staging buffers */
typedef struct tsr_context tsr_context;

/* ---- context and stream (context.cu) ---- */

/* message of this thread's last failing call; "" when none failed */
const char* tsr_last_error(void);
int tsr_context_create(int device, tsr_context** out);
/* waits for the stream, then frees the context; NULL is accepted */
int tsr_context_destroy(tsr_context* ctx);
/* waits until every call enqueued on the context's stream has finished */
int tsr_synchronize(tsr_context* ctx);
/* the device's name, NUL-terminated, into name[0..bytes) */
int tsr_device_name(tsr_context* ctx, char* name, int bytes);
int tsr_mem_info(tsr_context* ctx, size_t* free_bytes, size_t* total_bytes);

/* ---- memory (memory.cu) ---- */

/* *out := `bytes` of device memory (256-byte aligned; contents undefined) */
int tsr_malloc(tsr_context* ctx, void** out, size_t bytes);
int tsr_free(tsr_context* ctx, void* ptr);
/* host -> device, bytes as they are; src may be reused when this returns */
int tsr_write(tsr_context* ctx, void* dst, const void* src, size_t bytes);
/* device -> host, bytes as they are; waits for the stream */
int tsr_read(tsr_context* ctx, void* dst, const void* src, size_t bytes);
/* host f32 -> device bf16 (round to nearest even), n elements; src may be reused when this returns */
int tsr_write_bf16(tsr_context* ctx, tsr_bf16* dst, const float* src, size_t n);
/* device bf16 -> host f32, n elements; waits for the stream */
int tsr_read_bf16(tsr_context* ctx, float* dst, const tsr_bf16* src, size_t n);

/* pinned host memory (cudaMallocHost): copies from and to it are asynchronous and can be captured */
int tsr_host_alloc(tsr_context* ctx, void** out, size_t bytes);
int tsr_host_free(tsr_context* ctx, void* ptr);
/* device bf16 -> pinned host f32, n elements, enqueued: dst is valid after the next wait; capturable */
int tsr_read_bf16_async(tsr_context* ctx, float* dst, const tsr_bf16* src, size_t n);
/* device -> pinned host, bytes as they are, enqueued: dst is valid after the next wait; capturable */
int tsr_read_async(tsr_context* ctx, void* dst, const void* src, size_t bytes);
/* dummy weights on the device: dst[i] = offset + (2u - 1) * scale for the [rows, cols] slice
   starting at element `first` of a [*, width] tensor; u = hash(seed, index) as src/model/dummyWeights.ts */
int tsr_fill_uniform(tsr_context* ctx, tsr_bf16* dst, size_t rows, size_t cols, size_t width, size_t first, int seed, float offset, float scale);

/* ---- graphs and events (graph.cu) ---- */

/* start recording this thread's calls on the context's stream instead of running them */
int tsr_graph_begin(tsr_context* ctx);
/* stop recording; *exec := the instantiated graph (also ends a capture that a failed call broke) */
int tsr_graph_end(tsr_context* ctx, void** exec);
/* enqueue one replay of a graph from tsr_graph_end */
int tsr_graph_launch(tsr_context* ctx, void* exec);
int tsr_graph_destroy(tsr_context* ctx, void* exec);
int tsr_event_create(tsr_context* ctx, void** out);
/* record the event on the context's stream */
int tsr_event_record(tsr_context* ctx, void* event);
/* *ms := time between two recorded events; waits for `end` */
int tsr_event_elapsed(tsr_context* ctx, void* start, void* end, float* ms);
/* *done := 1 when the work before the event's last record has finished, else 0; never waits */
int tsr_event_query(tsr_context* ctx, void* event, int* done);
int tsr_event_destroy(tsr_context* ctx, void* event);

/* ---- kernels: the catalog (src/kernels/catalog.ts) ---- */

/* rows.cu: out[t] = table[ids[t] - vocabStart] when vocabStart <= ids[t] < vocabEnd, else 0 */
int tsr_embedding(tsr_context* ctx, tsr_bf16* out, const int32_t* ids, const tsr_bf16* table, int T, int H, int vocabStart, int vocabEnd);
/* gemm.cu: out[M,N] = x[M,K] @ w[N,K]^T (cuBLAS, f32 accumulation) */
int tsr_matmul(tsr_context* ctx, tsr_bf16* out, const tsr_bf16* x, const tsr_bf16* w, int M, int N, int K);
/* linear.cu: x[m,n] += bias[n] */
int tsr_add_bias(tsr_context* ctx, tsr_bf16* x, const tsr_bf16* bias, int M, int N);
/* norm.cu: out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w; out may alias x */
int tsr_rmsnorm(tsr_context* ctx, tsr_bf16* out, const tsr_bf16* x, const tsr_bf16* w, int T, int H, float eps);
/* norm.cu: residualOut[t] = (accumulate ? residualIn[t] : 0) + x[t] (f32); out[t] = rmsnorm(residualOut[t]) * w; out may alias x,
 * residualOut residualIn */
int tsr_add_rmsnorm(tsr_context* ctx, tsr_bf16* out, float* residualOut, const float* residualIn, const tsr_bf16* x, const tsr_bf16* w, int T,
                    int H, float eps, int accumulate);
/* norm.cu: per-head RMSNorm in place; head h of token t starts at t*stride + h*D */
int tsr_head_rmsnorm(tsr_context* ctx, tsr_bf16* x, const tsr_bf16* w, int T, int nHeads, int D, int stride, float eps);
/* rope.cu: rotate-half rope of q and k in place, angle = positions[t] * invFreq[i] */
int tsr_rope(tsr_context* ctx, tsr_bf16* q, tsr_bf16* k, const int32_t* positions, const float* invFreq, int T, int Hq, int Hkv, int D, int qStride, int kStride);
/* activation.cu: out[t,i] = silu(gateUp[t,i]) * gateUp[t,I+i] */
int tsr_silu_mul(tsr_context* ctx, tsr_bf16* out, const tsr_bf16* gateUp, int T, int I);
/* kv_cache.cu: kCache[slots[t]] = k[t]; vCache[slots[t]] = v[t]; slots < 0 are skipped */
int tsr_kv_write(tsr_context* ctx, tsr_bf16* kCache, tsr_bf16* vCache, const tsr_bf16* k, const tsr_bf16* v, const int32_t* slots, int T, int Hkv, int D, int kStride, int vStride);
/* rope.cu: rope, then kCache[slots[t]] = rotated k[t]; vCache[slots[t]] = v[t] (slots < 0 skipped), one kernel */
int tsr_rope_kv_write(tsr_context* ctx, tsr_bf16* q, tsr_bf16* k, tsr_bf16* kCache, tsr_bf16* vCache, const tsr_bf16* v, const int32_t* positions, const float* invFreq, const int32_t* slots, int T, int Hq, int Hkv, int D, int qStride, int kStride, int vStride);
/* gemm.cu: qkv = x @ w^T (rows of token t: q heads, k heads, v heads), then rope_kv_write over it; one kernel at decode sizes */
int tsr_qkv_rope_kv_write(tsr_context* ctx, tsr_bf16* qkv, const tsr_bf16* x, const tsr_bf16* w, tsr_bf16* kCache, tsr_bf16* vCache, const int32_t* positions, const float* invFreq, const int32_t* slots, int T, int K, int Hq, int Hkv, int D);
/* gemm.cu: gateUp = x @ w^T (w: I gate rows, then I up rows), then out = silu_mul(gateUp); one kernel at decode sizes, gateUp then not written */
int tsr_gate_up_silu(tsr_context* ctx, tsr_bf16* out, tsr_bf16* gateUp, const tsr_bf16* x, const tsr_bf16* w, int T, int I, int K);
/* gemm.cu: add_rmsnorm(normed, residualOut, residualIn, x, normWeight), then qkv_rope_kv_write over normed; one kernel at decode
 * sizes where residualOut is not residualIn (the norm then made as x is staged, up to where one rounding falls; normed not written) */
int tsr_add_rmsnorm_qkv_rope_kv_write(tsr_context* ctx, tsr_bf16* qkv, tsr_bf16* normed, float* residualOut, const float* residualIn, const tsr_bf16* x, const tsr_bf16* normWeight, const tsr_bf16* w, tsr_bf16* kCache, tsr_bf16* vCache, const int32_t* positions, const float* invFreq, const int32_t* slots, float eps, int accumulate, int T, int K, int Hq, int Hkv, int D);
/* gemm.cu: add_rmsnorm(normed, residualOut, residualIn, x, normWeight), then gate_up_silu over normed; one kernel at decode sizes
 * where residualOut is not residualIn (normed and gateUp then not written) */
int tsr_add_rmsnorm_gate_up_silu(tsr_context* ctx, tsr_bf16* out, tsr_bf16* gateUp, tsr_bf16* normed, float* residualOut, const float* residualIn, const tsr_bf16* x, const tsr_bf16* normWeight, const tsr_bf16* w, float eps, int accumulate, int T, int I, int K);
/* attention.cu: causal attention of each query token over its sequence's paged cache; no sequence has more than maxQueryLen
 * query tokens in the call (T is always safe; below 16 the prefill kernel is not launched) */
int tsr_paged_attention(tsr_context* ctx, tsr_bf16* out, const tsr_bf16* q, const tsr_bf16* kCache, const tsr_bf16* vCache, const int32_t* queryToSeq, const int32_t* positions, const int32_t* blockTables, int T, int Hq, int Hkv, int D, int qStride, int maxBlocks, int blockSize, float scale, int maxQueryLen);
/* rows.cu: ids[t] = argmax[from[t]] where from[t] >= 0, drawn[-2 - from[t]] where from[t] <= -2, else unchanged: a step's input
 * ids taken from the tokens the step before chose, still on the device (asynchronous scheduling) */
int tsr_take_tokens(tsr_context* ctx, int32_t* ids, const int32_t* from, const int32_t* argmax, const int32_t* drawn, int T);
/* rows.cu: out[r] = x[indices[r]] (rows of length H) */
int tsr_gather_rows(tsr_context* ctx, tsr_bf16* out, const tsr_bf16* x, const int32_t* indices, int R, int H);
/* sampling.cu: out[m] = argmax_v logits[m,v], the first index on ties */
int tsr_argmax(tsr_context* ctx, int32_t* out, const tsr_bf16* logits, int M, int V);
/* sampling.cu: x[m] = softmax(x[m] / temperature) in place */
int tsr_softmax(tsr_context* ctx, tsr_bf16* x, int M, int V, float temperature);
/* rows.cu: out[i] = x[i] for n elements */
int tsr_copy(tsr_context* ctx, tsr_bf16* out, const tsr_bf16* x, int n);

#ifdef __cplusplus
}
#endif

#endif
