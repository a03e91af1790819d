/*
 * tsr_sample_rows (sampler.cu): the CPU sampler (src/sampling/sampler.ts) on the GPU, bit for
 * bit in the chosen token; tsr_logprobs_rows_bf16 (logprobs.cu): src/sampling/logprobs.ts. Kept out of tessera_cuda.h, whose kernel section is exactly the
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
   the CPU's. Before all of it, the row's logits processors as edits of its float64 logits
   (src/sampling/logitsEdits.ts; edit_offsets null: none): row r's phase p edits are
   [edit_offsets[4r + p], edit_offsets[4r + p + 1]) of edit_ids / edit_values, phase 0 adding
   the value (logit bias), 1 setting -inf (min_tokens), 2 dividing positive logits by the
   value and multiplying the others (repetition), 3 subtracting it (frequency and presence).
   Its work arrays, 21 * rows * vocab bytes, are kept in the context and grown. */
int tsr_sample_rows(tsr_context* ctx, const float* logits, int rows, int vocab, const double* temperature, const double* top_p, const int32_t* top_k, const double* min_p, const uint32_t* seed_lo, const uint32_t* seed_hi, const int32_t* position, const int32_t* sample_index, const int32_t* edit_offsets, const int32_t* edit_ids, const double* edit_values, int32_t* out_tokens);
/* the same from the model's bf16 logits (each widened exactly, as the host's f32 copy is) */
int tsr_sample_rows_bf16(tsr_context* ctx, const tsr_bf16* logits, int rows, int vocab, const double* temperature, const double* top_p, const int32_t* top_k, const double* min_p, const uint32_t* seed_lo, const uint32_t* seed_hi, const int32_t* position, const int32_t* sample_index, const int32_t* edit_offsets, const int32_t* edit_ids, const double* edit_values, int32_t* out_tokens);
/* computeLogprobs (src/sampling/logprobs.ts) for each of `rows` rows of the model's bf16 logits
   (device, [rows, vocab]): out_logprob[r] and out_rank[r] of token tokens[r] (device), and the
   num_top most likely tokens, most likely first (ties: lower id first), as out_top_ids /
   out_top_logprobs [r * num_top + k] (id -1 past the vocabulary). log(sum exp) in float64. */
int tsr_logprobs_rows_bf16(tsr_context* ctx, const tsr_bf16* logits, int rows, int vocab, const int32_t* tokens, int num_top, double* out_logprob, int32_t* out_rank, int32_t* out_top_ids, double* out_top_logprobs);
#ifdef __cplusplus
}
#endif
#endif
