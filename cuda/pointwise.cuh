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

}  // namespace tsr
