// tsr_logprobs_rows_bf16: computeLogprobs (src/sampling/logprobs.ts) on the device, so that a
// step whose rows ask for logprobs copies back a few numbers a row instead of its logits (at
// batch 64, 33 MB a step, and a pass over each row on the host).
//
// One block per row, each pass over it in 16-byte loads (8 logits) where the vocabulary is a
// multiple of 8. The max, the sum of exp(x - max) in float64 (the host sums in float64 too:
// the two differ in the order of the additions only, far below what a float64 logprob shows)
// and the rank (how many logits are strictly greater than the chosen one's) are block
// reductions. The top tokens come one a round: round k takes the largest logit after round
// k - 1's in the order (value descending, id ascending), which is the host's order (its
// insertion keeps the lower id first on ties, as argmax's keep_better does), so the ids are the
// host's exactly.
#include <cstdint>

#include "common.cuh"
#include "context.cuh"
#include "sampler.h"

namespace {

using tsr::bf16;
using tsr::load;

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kNoToken = INT32_MAX;

// the better (tsr::keep_better: larger value, then lower id) of every thread's (v, id), to every thread
__device__ void block_better(float& v, int& id, float* slot_v, int* slot_id) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    tsr::keep_better(v, id, __shfl_xor_sync(tsr::kFullWarp, v, offset), __shfl_xor_sync(tsr::kFullWarp, id, offset));
  }
  __syncthreads();
  if (lane == 0) slot_v[warp] = v, slot_id[warp] = id;
  __syncthreads();
  v = lane < kWarps ? slot_v[lane] : -tsr::kInfinity;
  id = lane < kWarps ? slot_id[lane] : kNoToken;
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    tsr::keep_better(v, id, __shfl_xor_sync(tsr::kFullWarp, v, offset), __shfl_xor_sync(tsr::kFullWarp, id, offset));
  }
}

// f(i, x_i) for every logit of the row, this thread's share: 8 at a time from one 16-byte load
// where V % 8 == 0 (the row then starts 16-byte aligned), else one at a time
template <class F>
__device__ __forceinline__ void for_each_logit(const bf16* x, int V, F&& f) {
  if (V % 8 == 0) {
    const uint4* chunks = reinterpret_cast<const uint4*>(x);
    for (int c = threadIdx.x; c < V / 8; c += kThreads) {
      const uint4 v = chunks[c];
      const bf16* e = reinterpret_cast<const bf16*>(&v);
#pragma unroll
      for (int j = 0; j < 8; ++j) f(8 * c + j, load(e[j]));
    }
  } else {
    for (int i = threadIdx.x; i < V; i += kThreads) f(i, load(x[i]));
  }
}

__global__ void __launch_bounds__(kThreads, 1) logprobs_kernel(const bf16* logits, int V, const int32_t* tokens, int num_top, double* out_logprob,
                                                            int32_t* out_rank, int32_t* out_top_ids, double* out_top_logprobs) {
  __shared__ float first_v[kWarps];
  __shared__ int first_id[kWarps];
  const int row = blockIdx.x;
  const bf16* x = logits + (size_t)row * V;

  float max = -tsr::kInfinity;
  for_each_logit(x, V, [&](int, float v) { max = fmaxf(max, v); });
  max = tsr::block_max(max);
  double sum = 0.0;
  for_each_logit(x, V, [&](int, float v) { sum += exp((double)v - (double)max); });
  const double log_sum_exp = (double)max + log(tsr::block_sum(sum));

  const int token = tokens[row];
  const float chosen = load(x[token]);
  double greater = 0.0;  // counts, exact in float64
  for_each_logit(x, V, [&](int, float v) { greater += v > chosen ? 1.0 : 0.0; });
  greater = tsr::block_sum(greater);
  if (threadIdx.x == 0) {
    out_logprob[row] = (double)chosen - log_sum_exp;
    out_rank[row] = 1 + (int)greater;
  }

  // the top num_top, one a round, each the first after the one before
  float last_v = tsr::kInfinity;
  int last_id = -1;
  for (int k = 0; k < num_top; ++k) {
    float v = -tsr::kInfinity;
    int id = kNoToken;
    for_each_logit(x, V, [&](int i, float xi) {
      const bool after = xi < last_v || (xi == last_v && i > last_id);
      if (after) tsr::keep_better(v, id, xi, i);
    });
    block_better(v, id, first_v, first_id);
    if (threadIdx.x == 0) {
      const size_t at = (size_t)row * num_top + k;
      out_top_ids[at] = id == kNoToken ? -1 : id;  // fewer tokens than num_top
      out_top_logprobs[at] = id == kNoToken ? 0.0 : (double)v - log_sum_exp;
    }
    last_v = v, last_id = id;
  }
}

}  // namespace

extern "C" int tsr_logprobs_rows_bf16(tsr_context* ctx, const tsr_bf16* logits, int rows, int vocab, const int32_t* tokens, int num_top,
                                      double* out_logprob, int32_t* out_rank, int32_t* out_top_ids, double* out_top_logprobs) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(rows >= 0 && vocab > 0 && num_top >= 0, "logprobs_rows: rows=%d vocab=%d num_top=%d", rows, vocab, num_top);
  if (rows == 0) return TSR_OK;
  logprobs_kernel<<<rows, kThreads, 0, ctx->stream>>>(reinterpret_cast<const bf16*>(logits), vocab, tokens, num_top, out_logprob, out_rank,
                                                       out_top_ids, out_top_logprobs);
  return tsr::check(cudaGetLastError(), "logprobs_rows");
}
