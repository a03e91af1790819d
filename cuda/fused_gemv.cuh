// Decode-step projections whose next kernel is made as their sums are stored, bit for bit what
// the two kernels give, one launch fewer (and, with gemv::NormedResidualInput, the norm before
// them made as x is staged: add_rmsnorm's result up to where one rounding falls, gemv.cuh):
// - the qkv projection with rope and the cache write (matmul, then rope_kv_write);
// - the MLP's gate and up projection with the activation (matmul, then silu_mul).
//
// rope turns dimension i of a head with dimension i + D/2. The bulk GEMV's stores are made by
// the thread that holds tile rows g and g + 8 of a 16-row block (gemv.cuh), so a q or k row block
// here is not 16 consecutive rows: it is rows j .. j + 7 of a head and their partners
// j + D/2 .. j + D/2 + 7, which puts both members of a pair in one thread. The bulk copies fetch
// any row as cheaply as the next one, and each row's sum is made exactly as in the plain GEMV
// (same k order, same mmas), so the reordering costs nothing and changes no bits. v rows are
// taken in order and also go to the cache. The activation pairs gate row i with up row I + i
// the same way.
#pragma once

#include "gemv.cuh"
#include "pointwise.cuh"

namespace tsr {

// gemv_bulk_kernel's Rows for qkv[M, (Hq + 2 Hkv) D] = x @ w^T, rows of token m: q heads, k heads,
// v heads. Needs D % 16 == 0 (a row block never straddles two heads, nor q/k and v).
struct RopeKvRows {
  bf16* qkv;
  bf16* k_cache;
  bf16* v_cache;
  const int* positions;
  const float* inv_freq;
  const int* slots;
  int Hq, Hkv, D;
  float2* turn;  // [M][D/2] (cos, sin), in shared memory once prepared

  __device__ int width() const { return (Hq + 2 * Hkv) * D; }
  __device__ int rotated_rows() const { return (Hq + Hkv) * D; }  // q and k

  __device__ int row(int rb, int i) const {
    const int first = rb * gemv::kRowsPerBlock;
    if (first >= rotated_rows()) return min(first + i, width() - 1);
    const int blocks_per_head = D / gemv::kRowsPerBlock;
    const int head = rb / blocks_per_head, j = (rb % blocks_per_head) * 8;
    return head * D + j + (i & 7) + (i >> 3) * (D / 2);
  }

  __host__ __device__ size_t shared_bytes(int M) const { return (size_t)M * (D / 2) * sizeof(float2); }

  // the step's angles (positions and inv_freq are inputs of the step, not of the kernel before)
  __device__ void prepare(unsigned char* shared, int M) {
    turn = reinterpret_cast<float2*>(shared);
    const int half = D / 2;
    for (int e = threadIdx.x; e < M * half; e += blockDim.x) turn[e] = rotation(positions[e / half], inv_freq[e % half]);
  }

  // v row n of token m (at `token` in qkv), into the cache too unless the token is padding
  __device__ void store_v(size_t token, int slot, int n, bf16 value) const {
    if (n >= width()) return;
    qkv[token + n] = value;
    if (slot >= 0) v_cache[(size_t)slot * Hkv * D + n - rotated_rows()] = value;
  }

  __device__ void store(int rb, int g, int m, bf16 lo, bf16 hi) const {
    const int first = rb * gemv::kRowsPerBlock;
    const size_t token = (size_t)m * width();
    const int slot = slots[m];  // < 0: padding, rotated but not cached
    if (first >= rotated_rows()) {
      const int n = first + g;
      store_v(token, slot, n, lo);
      store_v(token, slot, n + 8, hi);
      return;
    }
    const int blocks_per_head = D / gemv::kRowsPerBlock;
    const int head = rb / blocks_per_head, i = (rb % blocks_per_head) * 8 + g;  // i: the pair's frequency
    bf16 y1, y2;
    rotate_pair(load(lo), load(hi), turn[m * (D / 2) + i], y1, y2);
    qkv[token + head * D + i] = y1;
    qkv[token + head * D + i + D / 2] = y2;
    if (head >= Hq && slot >= 0) {
      bf16* k = k_cache + (size_t)slot * Hkv * D + (size_t)(head - Hq) * D;
      k[i] = y1;
      k[i + D / 2] = y2;
    }
  }
};

// gemv_bulk_kernel's Rows for out[M, I] = silu_mul(x @ w^T) with w's rows gate (I of them), then up:
// row block rb is gate rows 8 rb .. 8 rb + 7 and their up rows. Needs I % 8 == 0.
struct SiluRows {
  bf16* out;
  int I;
  __device__ int row(int rb, int i) const { return rb * 8 + (i & 7) + (i >> 3) * I; }
  __host__ __device__ size_t shared_bytes(int) const { return 0; }
  __device__ void prepare(unsigned char*, int) {}
  __device__ void store(int rb, int g, int m, bf16 gate, bf16 up) const { out[(size_t)m * I + rb * 8 + g] = silu_times(load(gate), load(up)); }
};

// Where qkv_rope_kv_write's fused kernel runs: the bulk GEMV's conditions with the angles (and
// `input_bytes` the input needs) beside x
inline bool qkv_rope_fuses(const bf16* x, const bf16* w, int M, int K, int D, size_t input_bytes = 0) {
  return D % gemv::kRowsPerBlock == 0 && gemv_bulk_applies(x, w, M, K, (size_t)M * (D / 2) * sizeof(float2) + input_bytes);
}

// Where gate_up_silu's fused kernel runs: the bulk GEMV's conditions (with `input_bytes` the input
// needs beside x), and whole 8-row blocks of gate rows (SiluRows)
inline bool gate_up_fuses(const bf16* x, const bf16* w, int M, int I, int K, size_t input_bytes = 0) {
  return I > 0 && I % 8 == 0 && gemv_bulk_applies(x, w, M, K, input_bytes);
}

// Input: gemv::PlainInput (x as it is) or gemv::NormedResidualInput (the norm made as x is staged)
template <class Input>
cudaError_t qkv_rope_kv_write(bf16* qkv, Input input, const bf16* w, bf16* k_cache, bf16* v_cache, const int* positions,
                              const float* inv_freq, const int* slots, int M, int K, int Hq, int Hkv, int D, const GemvLaunch& launch) {
  const RopeKvRows rows{qkv, k_cache, v_cache, positions, inv_freq, slots, Hq, Hkv, D, nullptr};
  return gemv::launch_bulk(rows, input, w, M, (Hq + 2 * Hkv) * D, K, launch);
}

template <class Input>
cudaError_t gate_up_silu(bf16* out, Input input, const bf16* w, int M, int I, int K, const GemvLaunch& launch) {
  return gemv::launch_bulk(SiluRows{out, I}, input, w, M, 2 * I, K, launch);
}

}  // namespace tsr
