// Per-element math made by more than one kernel: a kernel of its own and a GEMV's stores
// (fused_gemv.cuh) must give the same bits, so both call these. Device functions only: a header
// of kernels included by a second .cu would define its kernels twice.
#pragma once

#include "common.cuh"

namespace tsr {

// (cos, sin) of the angle position x inv_freq, formed in f64
__device__ __forceinline__ float2 rotation(int position, float inv_freq) {
  double s, c;
  sincos((double)position * (double)inv_freq, &s, &c);
  return make_float2((float)c, (float)s);
}

// The pair (x1, x2) turned by cs = (cos, sin), each result rounded once. Products and sums are
// spelled out (no contraction left to the compiler), so that every kernel that rotates (rope.cuh's
// kernels, the qkv GEMV's stores in fused_gemv.cuh) gives the same bits.
__device__ __forceinline__ void rotate_pair(float x1, float x2, float2 cs, bf16& y1, bf16& y2) {
  y1 = round_bf16(__fadd_rn(__fmul_rn(x1, cs.x), -__fmul_rn(x2, cs.y)));
  y2 = round_bf16(__fadd_rn(__fmul_rn(x2, cs.x), __fmul_rn(x1, cs.y)));
}

// silu(gate) * up, rounded once: silu(x) = x * sigmoid(x); for x -> -inf, exp overflows to inf and
// the quotient is -0. Each operation rounded as written (no contraction left to the compiler), so
// that every kernel that makes the activation (activation.cuh's silu_mul, the gate_up GEMV's
// stores in fused_gemv.cuh) gives the same bits.
__device__ __forceinline__ bf16 silu_times(float gate, float up) {
  return round_bf16(__fmul_rn(__fdiv_rn(gate, __fadd_rn(1.f, expf(-gate))), up));
}

// ---- RMSNorm: norm.cuh's kernels, and a GEMV that normalises its own input ----

// What add_rmsnorm does with x: starts the residual from it, adds it, or leaves the residual as it
// is (x unread: the GEMV before already added its output, fused_gemv.cuh's AddToResidual).
enum ResidualMode : int { kResidualStart = 0, kResidualAdd = 1, kResidualKeep = 2 };

// The norms' threads a row: fixed, so that the sum of squares runs in one order (thread i takes
// elements i, i + 1024, ..., then block_sum over 32 warps) in the norm kernels and in a GEMV
// block that normalises its own input (fused_gemv.cuh's NormedResidual, each of its 256 threads
// standing for 4 of these). Fewer threads a row serialise the loads: at 256, batch 64's norms
// took three times as long.
constexpr int kNormThreads = 1024;

// One thread's share of a row's sum of squares, and the row's 1/rms from every thread's share
__device__ __forceinline__ float add_square(float squares, float v) { return __fmaf_rn(v, v, squares); }
__device__ __forceinline__ float inv_rms(float squares, int H, float eps) { return rsqrtf(block_sum(squares) / H + eps); }
// a normalised element, rounded once: normalise, then weight (HF's order)
__device__ __forceinline__ bf16 normalized(float v, float inv, bf16 w) { return round_bf16(__fmul_rn(__fmul_rn(v, inv), load(w))); }

}  // namespace tsr
