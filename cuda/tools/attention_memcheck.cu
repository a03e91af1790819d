// Drives kv_write and paged_attention through the C ABI on a mixed batch, for
// compute-sanitizer (memcheck, racecheck, initcheck), and checks the outputs against a float64
// reference on the host. Exit status 0 only when every call succeeded and every output is
// within tolerance.
//
//   compute-sanitizer --tool memcheck --error-exitcode 1 cuda/build/attention_memcheck
//
// The batch: a 37-token prefill (two full prefill tiles and a ragged end of 5 tokens), a
// decode at position 70, and a chunked prefill of 20 tokens at positions 50..69 whose first
// 50 keys are already in the cache. Block tables are shuffled, so neighbouring keys live in
// far-apart blocks. Configurations cover head dimensions 16..256 (the vector and scalar tile
// loads), MHA and GQA groups up to 24 (two head chunks of the decode kernel).
#include <cmath>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <random>
#include <vector>

#include "tessera_cuda.h"

namespace {

struct Config {
  int Hq, Hkv, D;
};

struct Seq {
  int start;   // first position computed in this step
  int tokens;  // tokens computed in this step
};

#define CHECK(call)                                                                     \
  do {                                                                                  \
    if (int status_ = (call)) {                                                         \
      std::fprintf(stderr, "%s failed (%d): %s\n", #call, status_, tsr_last_error()); \
      return false;                                                                     \
    }                                                                                   \
  } while (0)


bool run(tsr_context* ctx, Config c, std::mt19937& rng) {
  const int block_size = 16, max_blocks = 8, num_blocks = 3 * max_blocks + 5;
  const std::vector<Seq> seqs = {{0, 37}, {70, 1}, {50, 20}};  // the longest: 37 tokens (maxQueryLen)
  const int S = (int)seqs.size();
  const int width = (c.Hq + 2 * c.Hkv) * c.D;  // fused qkv row: q heads, then k, then v
  const int slot_width = c.Hkv * c.D;
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);

  // shuffled physical blocks: sequence s owns blocks[s*max_blocks .. (s+1)*max_blocks)
  std::vector<int> blocks(num_blocks);
  for (int b = 0; b < num_blocks; ++b) blocks[b] = b;
  std::shuffle(blocks.begin(), blocks.end(), rng);
  std::vector<int> tables(S * max_blocks);
  for (int i = 0; i < S * max_blocks; ++i) tables[i] = blocks[i];

  std::vector<int> query_to_seq, positions, slots;
  for (int s = 0; s < S; ++s) {
    for (int i = 0; i < seqs[s].tokens; ++i) {
      const int p = seqs[s].start + i;
      query_to_seq.push_back(s);
      positions.push_back(p);
      slots.push_back(tables[s * max_blocks + p / block_size] * block_size + p % block_size);
    }
  }
  const int T = (int)positions.size();
  slots[T - 1] = -1;  // a padding token: kv_write must skip it...
  const int padded_slot = tables[2 * max_blocks + positions[T - 1] / block_size] * block_size + positions[T - 1] % block_size;

  // a random cache everywhere (keys before a sequence's `start` are its history), then this step's k, v
  const size_t cache_elements = (size_t)num_blocks * block_size * slot_width;
  std::vector<__nv_bfloat16> k_cache(cache_elements), v_cache(cache_elements), qkv((size_t)T * width);
  for (auto& x : k_cache) x = __float2bfloat16(uniform(rng));
  for (auto& x : v_cache) x = __float2bfloat16(uniform(rng));
  for (auto& x : qkv) x = __float2bfloat16(uniform(rng));

  void *d_k, *d_v, *d_qkv, *d_out, *d_q2s, *d_pos, *d_slots, *d_tables;
  const size_t out_bytes = (size_t)T * c.Hq * c.D * sizeof(__nv_bfloat16);
  CHECK(tsr_malloc(ctx, &d_k, cache_elements * 2));
  CHECK(tsr_malloc(ctx, &d_v, cache_elements * 2));
  CHECK(tsr_malloc(ctx, &d_qkv, qkv.size() * 2));
  CHECK(tsr_malloc(ctx, &d_out, out_bytes));
  CHECK(tsr_malloc(ctx, &d_q2s, T * 4));
  CHECK(tsr_malloc(ctx, &d_pos, T * 4));
  CHECK(tsr_malloc(ctx, &d_slots, T * 4));
  CHECK(tsr_malloc(ctx, &d_tables, tables.size() * 4));
  CHECK(tsr_write(ctx, d_k, k_cache.data(), cache_elements * 2));
  CHECK(tsr_write(ctx, d_v, v_cache.data(), cache_elements * 2));
  CHECK(tsr_write(ctx, d_qkv, qkv.data(), qkv.size() * 2));
  CHECK(tsr_write(ctx, d_q2s, query_to_seq.data(), T * 4));
  CHECK(tsr_write(ctx, d_pos, positions.data(), T * 4));
  CHECK(tsr_write(ctx, d_slots, slots.data(), T * 4));
  CHECK(tsr_write(ctx, d_tables, tables.data(), tables.size() * 4));

  auto* q = static_cast<tsr_bf16*>(d_qkv);
  const float scale = 1.f / std::sqrt((float)c.D);
  CHECK(tsr_kv_write(ctx, (tsr_bf16*)d_k, (tsr_bf16*)d_v, q + c.Hq * c.D, q + (c.Hq + c.Hkv) * c.D, (int*)d_slots, T, c.Hkv, c.D,
                     width, width));
  CHECK(tsr_paged_attention(ctx, (tsr_bf16*)d_out, q, (tsr_bf16*)d_k, (tsr_bf16*)d_v, (int*)d_q2s, (int*)d_pos, (int*)d_tables, T,
                            c.Hq, c.Hkv, c.D, width, max_blocks, block_size, scale, 37));
  std::vector<__nv_bfloat16> out((size_t)T * c.Hq * c.D), k_after(cache_elements);
  CHECK(tsr_read(ctx, out.data(), d_out, out_bytes));
  CHECK(tsr_read(ctx, k_after.data(), d_k, cache_elements * 2));

  // the host's own kv_write, then attention in float64
  for (int t = 0; t < T; ++t) {
    if (slots[t] < 0) continue;
    for (int e = 0; e < slot_width; ++e) {
      k_cache[(size_t)slots[t] * slot_width + e] = qkv[(size_t)t * width + c.Hq * c.D + e];
      v_cache[(size_t)slots[t] * slot_width + e] = qkv[(size_t)t * width + (c.Hq + c.Hkv) * c.D + e];
    }
  }
  bool ok = true;
  for (size_t e = 0; e < cache_elements; ++e) {
    if (__bfloat162float(k_after[e]) != __bfloat162float(k_cache[e])) {
      std::fprintf(stderr, "kv_write: K cache element %zu differs (slot %zu; padded slot %d)\n", e, e / slot_width, padded_slot);
      ok = false;
      break;
    }
  }
  double worst = 0.0;
  const int group = c.Hq / c.Hkv;
  std::vector<double> p(max_blocks * block_size);
  for (int t = 0; t < T; ++t) {
    const int* table = &tables[query_to_seq[t] * max_blocks];
    for (int h = 0; h < c.Hq; ++h) {
      const int g = h / group;
      const __nv_bfloat16* qh = &qkv[(size_t)t * width + h * c.D];
      double top = -INFINITY, sum = 0.0;
      for (int j = 0; j <= positions[t]; ++j) {
        const size_t at = ((size_t)(table[j / block_size] * block_size + j % block_size) * c.Hkv + g) * c.D;
        double s = 0.0;
        for (int d = 0; d < c.D; ++d) s += (double)__bfloat162float(qh[d]) * __bfloat162float(k_cache[at + d]);
        p[j] = s * scale;
        top = std::fmax(top, p[j]);
      }
      for (int j = 0; j <= positions[t]; ++j) sum += (p[j] = std::exp(p[j] - top));
      for (int d = 0; d < c.D; ++d) {
        double o = 0.0;
        for (int j = 0; j <= positions[t]; ++j) {
          const size_t at = ((size_t)(table[j / block_size] * block_size + j % block_size) * c.Hkv + g) * c.D;
          o += p[j] * __bfloat162float(v_cache[at + d]);
        }
        o /= sum;
        const double got = __bfloat162float(out[((size_t)t * c.Hq + h) * c.D + d]);
        // one bf16 rounding of the output (2^-9 relative) plus f32 accumulation
        const double error = std::fabs(got - o) / (std::fabs(o) * 0x1p-8 + 1e-3);
        if (!(error <= 1.0)) ok = false;
        worst = std::fmax(worst, std::isnan(error) ? INFINITY : error);
      }
    }
  }
  std::printf("attention Hq=%-2d Hkv=%-2d D=%-3d T=%d: worst error %.3f of the bound (2^-8 |ref| + 1e-3) %s\n", c.Hq, c.Hkv, c.D, T,
              worst, ok ? "ok" : "FAILED");
  for (void* ptr : {d_k, d_v, d_qkv, d_out, d_q2s, d_pos, d_slots, d_tables}) CHECK(tsr_free(ctx, ptr));
  return ok;
}

}  // namespace

int main() {
  tsr_context* ctx = nullptr;
  if (tsr_context_create(0, &ctx) != TSR_OK) {
    std::fprintf(stderr, "tsr_context_create: %s\n", tsr_last_error());
    return 1;
  }
  std::mt19937 rng(1234);
  bool ok = true;
  for (Config c : {Config{4, 2, 32}, Config{4, 1, 16}, Config{6, 2, 20}, Config{32, 8, 128}, Config{24, 1, 80}, Config{4, 4, 256},
                   Config{2, 2, 96}}) {
    ok = run(ctx, c, rng) && ok;
  }
  if (tsr_context_destroy(ctx) != TSR_OK) {
    std::fprintf(stderr, "tsr_context_destroy: %s\n", tsr_last_error());
    ok = false;
  }
  std::printf("attention_memcheck: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
