/*
 * tsr_sample_rows (sampler.cu): the CPU sampler (src/sampling/sampler.ts) on the GPU, bit for
 * bit in the chosen token. Kept out of tessera_cuda.h, whose kernel section is exactly the
 * catalog (test/cuda-abi.test.ts); bound by ffi/sampling.ts.
 */
#ifndef TESSERA_SAMPLER_H
#define TESSERA_SAMPLER_H
#include "tessera_cuda.h"
#ifdef __cplusplus
extern "C" {
#endif
/* out_tokens[r] := the token the CPU sampler draws from logits[r, 0..vocab) (f32, device) with
   row r's parameters (device arrays of `rows` each): greedy argmax (lowest id on ties) when
   temperature[r] < 1e-5, else float64 exp((x - max) / T) -> min-p -> top-k (top_k <= 0 or
   >= kept: off) -> top-p (>= 1: off) -> an inverse-CDF draw of the Philox4x32-10 uniform keyed
   (seed_lo, seed_hi), counter (position, sample_index, 0, 0). The parameters are float64, as
   the CPU's. Logit bias, min_tokens masking and penalties are the caller's: apply them to the
   logits first. Allocates 21 * rows * vocab bytes of scratch on the stream per call. */
int tsr_sample_rows(tsr_context* ctx, const float* logits, int rows, int vocab, const double* temperature, const double* top_p, const int32_t* top_k, const double* min_p, const uint32_t* seed_lo, const uint32_t* seed_hi, const int32_t* position, const int32_t* sample_index, int32_t* out_tokens);
/* the same from the model's bf16 logits (each widened exactly, as the host's f32 copy is) */
int tsr_sample_rows_bf16(tsr_context* ctx, const tsr_bf16* logits, int rows, int vocab, const double* temperature, const double* top_p, const int32_t* top_k, const double* min_p, const uint32_t* seed_lo, const uint32_t* seed_hi, const int32_t* position, const int32_t* sample_index, int32_t* out_tokens);
#ifdef __cplusplus
}
#endif
#endif
