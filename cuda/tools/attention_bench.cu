// Checks and times paged attention (tsr_paged_attention) on the shapes that decide a serving
// step: long prefills, a chunked prefill, decode batches at short and long contexts; the
// Llama-3-8B heads (32 q, 8 kv, D 128) plus an MHA D=64 and a D=256 shape.
//
//   make -C cuda -j16 all tools && cuda/build/attention_bench [substring of the cases to run]
//
// Each case builds a random paged cache through the C ABI (blocks of 16, shuffled block tables,
// this step's K/V written by tsr_kv_write), runs the call once and checks every output against
// a naive reference kernel here (a warp per query row, scores and softmax in float64), then
// times it with events: warm-up, then the median of several runs, the L2 cache flushed before
// each (a decode step reads its K/V from HBM: the layers in between evict it). Prefill rates
// count causal FLOPs, 4 D Hq (position + 1) per query token; decode rates count the K/V bytes
// of every sequence, read once per kv head. Exit status 1 on any failed check or call.
//
// Tolerance per element: |out - ref| <= 2e-3 + 2^-7 |ref|. The output is rounded to bf16 once
// (2^-8 relative); 2^-7 leaves as much again for P in bf16 (TSR_ATTENTION_P_BF16=1) where one
// key dominates; 2e-3 is for outputs that cancel to near 0 (inputs are uniform in [-1, 1]:
// outputs are averages of many V rows), and is still far below what a wrong mask or slot
// changes (about 0.6 / sqrt(keys)).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tessera_cuda.h"

namespace {

using bf16 = __nv_bfloat16;

constexpr int kBlockSize = 16;

struct Heads {
  int Hq, Hkv, D;
  const char* name;
};

struct Seq {
  int cached;  // keys already in the cache
  int tokens;  // query tokens of this step, at positions cached .. cached + tokens - 1
};

struct Case {
  Heads heads;
  std::string what;
  std::vector<Seq> seqs;
  bool decode;  // rate in GB/s of K/V rather than TFLOP/s
};

// ---- reference ----

// One warp per query row (t, h), straight from the catalog's definition: the scores of keys
// 0..positions[t] through the block table, softmax and P.V in float64.
__global__ void reference_attention(float* out, const bf16* q, const bf16* k_cache, const bf16* v_cache, const int* query_to_seq,
                                    const int* positions, const int* block_tables, int T, int Hq, int Hkv, int D, int q_stride,
                                    int max_blocks, int block_size, float scale) {
  const long row = ((long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= (long)T * Hq) return;
  const int t = (int)(row / Hq), h = (int)(row % Hq), g = h / (Hq / Hkv);
  const int last = min(positions[t], max_blocks * block_size - 1);
  const int* table = block_tables + (size_t)query_to_seq[t] * max_blocks;
  const bf16* qh = q + (size_t)t * q_stride + (size_t)h * D;
  auto key_at = [&](int j) { return ((size_t)(table[j / block_size] * block_size + j % block_size) * Hkv + g) * D; };
  auto score = [&](int j) {
    const size_t at = key_at(j);
    double s = 0.0;
    for (int d = lane; d < D; d += 32) s += (double)__bfloat162float(qh[d]) * (double)__bfloat162float(k_cache[at + d]);
    for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_xor_sync(0xffffffffu, s, offset);
    return s * (double)scale;
  };
  double top = -INFINITY;
  for (int j = 0; j <= last; ++j) top = fmax(top, score(j));
  double sum = 0.0, acc[8] = {};
  for (int j = 0; j <= last; ++j) {
    const double p = exp(score(j) - top);
    sum += p;
    const size_t at = key_at(j);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int d = lane + 32 * i;
      if (d < D) acc[i] += p * (double)__bfloat162float(v_cache[at + d]);
    }
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int d = lane + 32 * i;
    if (d < D) out[((size_t)t * Hq + h) * D + d] = (float)(sum > 0.0 ? acc[i] / sum : 0.0);
  }
}

// ---- one case ----

struct Result {
  double ms = 0, rate = 0, max_error = 0, worst_of_tolerance = 0;
  bool pass = false;
  std::string failure;
};

#define TRY(call)                                                                          \
  do {                                                                                     \
    if (int status_ = (call)) {                                                            \
      result.failure = std::string(#call) + ": " + tsr_last_error();                       \
      return result;                                                                       \
    }                                                                                      \
  } while (0)
#define TRY_CUDA(call)                                                                     \
  do {                                                                                     \
    if (cudaError_t error_ = (call)) {                                                     \
      result.failure = std::string(#call) + ": " + cudaGetErrorString(error_);             \
      return result;                                                                       \
    }                                                                                      \
  } while (0)

// device buffers of one case, freed however the case ends
struct Buffers {
  tsr_context* ctx;
  std::vector<void*> pointers;
  ~Buffers() {
    for (void* p : pointers) tsr_free(ctx, p);
  }
  int alloc(void** out, size_t bytes) {
    const int status = tsr_malloc(ctx, out, bytes);
    if (status == TSR_OK) pointers.push_back(*out);
    return status;
  }
};

Result run_case(tsr_context* ctx, const Case& c, void* flush, size_t flush_elements, unsigned seed) {
  Result result;
  const int Hq = c.heads.Hq, Hkv = c.heads.Hkv, D = c.heads.D;
  std::mt19937 rng(seed);

  // shuffled physical blocks, handed to the sequences in order; table entries past a
  // sequence's blocks hold random blocks (never read)
  const int S = (int)c.seqs.size();
  std::vector<int> needed(S);
  int max_blocks = 1, num_blocks = 1;
  for (int s = 0; s < S; ++s) {
    needed[s] = (c.seqs[s].cached + c.seqs[s].tokens + kBlockSize - 1) / kBlockSize;
    max_blocks = std::max(max_blocks, needed[s]);
    num_blocks += needed[s];
  }
  std::vector<int> blocks(num_blocks);
  for (int b = 0; b < num_blocks; ++b) blocks[b] = b;
  std::shuffle(blocks.begin(), blocks.end(), rng);
  std::vector<int> tables((size_t)S * max_blocks);
  for (int s = 0, next = 0; s < S; ++s) {
    for (int j = 0; j < max_blocks; ++j) tables[(size_t)s * max_blocks + j] = j < needed[s] ? blocks[next++] : (int)(rng() % num_blocks);
  }
  std::vector<int> query_to_seq, positions, slots;
  double flops = 0, kv_bytes = 0;
  for (int s = 0; s < S; ++s) {
    for (int i = 0; i < c.seqs[s].tokens; ++i) {
      const int p = c.seqs[s].cached + i;
      query_to_seq.push_back(s);
      positions.push_back(p);
      slots.push_back(tables[(size_t)s * max_blocks + p / kBlockSize] * kBlockSize + p % kBlockSize);
      flops += 4.0 * D * Hq * (p + 1);
    }
    kv_bytes += 2.0 * 2.0 * (c.seqs[s].cached + c.seqs[s].tokens) * Hkv * D;
  }
  const int T = (int)positions.size();
  const int width = (Hq + 2 * Hkv) * D;  // a fused qkv row: q heads, then k, then v
  const size_t slot_elements = (size_t)Hkv * D, num_slots = (size_t)num_blocks * kBlockSize;
  const size_t out_elements = (size_t)T * Hq * D;

  Buffers buffers{ctx, {}};
  void *k, *v, *qkv, *out, *ref, *q2s, *pos, *slot, *table;
  TRY(buffers.alloc(&k, num_slots * slot_elements * sizeof(bf16)));
  TRY(buffers.alloc(&v, num_slots * slot_elements * sizeof(bf16)));
  TRY(buffers.alloc(&qkv, (size_t)T * width * sizeof(bf16)));
  TRY(buffers.alloc(&out, out_elements * sizeof(bf16)));
  TRY(buffers.alloc(&ref, out_elements * sizeof(float)));
  TRY(buffers.alloc(&q2s, T * sizeof(int)));
  TRY(buffers.alloc(&pos, T * sizeof(int)));
  TRY(buffers.alloc(&slot, T * sizeof(int)));
  TRY(buffers.alloc(&table, tables.size() * sizeof(int)));
  // the whole cache random (history included), then this step's k and v written into it
  TRY(tsr_fill_uniform(ctx, (tsr_bf16*)k, num_slots, slot_elements, slot_elements, 0, (int)seed, 0.f, 1.f));
  TRY(tsr_fill_uniform(ctx, (tsr_bf16*)v, num_slots, slot_elements, slot_elements, 0, (int)seed + 1, 0.f, 1.f));
  TRY(tsr_fill_uniform(ctx, (tsr_bf16*)qkv, T, width, width, 0, (int)seed + 2, 0.f, 1.f));
  TRY(tsr_write(ctx, q2s, query_to_seq.data(), T * sizeof(int)));
  TRY(tsr_write(ctx, pos, positions.data(), T * sizeof(int)));
  TRY(tsr_write(ctx, slot, slots.data(), T * sizeof(int)));
  TRY(tsr_write(ctx, table, tables.data(), tables.size() * sizeof(int)));
  auto* q = static_cast<tsr_bf16*>(qkv);
  TRY(tsr_kv_write(ctx, (tsr_bf16*)k, (tsr_bf16*)v, q + Hq * D, q + (Hq + Hkv) * D, (int*)slot, T, Hkv, D, width, width));
  // NaN everywhere first: an element the kernels forget fails the check
  TRY(tsr_synchronize(ctx));
  TRY_CUDA(cudaMemset(out, 0xff, out_elements * sizeof(bf16)));
  TRY_CUDA(cudaDeviceSynchronize());

  const float scale = 1.f / std::sqrt((float)D);
  int max_query = 0;
  for (const Seq& s : c.seqs) max_query = std::max(max_query, s.tokens);
  auto attention = [&] {
    return tsr_paged_attention(ctx, (tsr_bf16*)out, q, (tsr_bf16*)k, (tsr_bf16*)v, (int*)q2s, (int*)pos, (int*)table, T, Hq, Hkv, D,
                               width, max_blocks, kBlockSize, scale, max_query);
  };
  TRY(attention());
  TRY(tsr_synchronize(ctx));

  // the reference on the runtime's default stream, after the library's stream is idle
  const long rows = (long)T * Hq;
  reference_attention<<<(unsigned)((rows + 3) / 4), 128>>>((float*)ref, (const bf16*)qkv, (const bf16*)k, (const bf16*)v, (int*)q2s,
                                                           (int*)pos, (int*)table, T, Hq, Hkv, D, width, max_blocks, kBlockSize, scale);
  TRY_CUDA(cudaGetLastError());
  TRY_CUDA(cudaDeviceSynchronize());
  std::vector<bf16> got(out_elements);
  std::vector<float> want(out_elements);
  TRY(tsr_read(ctx, got.data(), out, out_elements * sizeof(bf16)));
  TRY_CUDA(cudaMemcpy(want.data(), ref, out_elements * sizeof(float), cudaMemcpyDeviceToHost));
  bool ok = true;
  for (size_t e = 0; e < out_elements; ++e) {
    const double error = std::fabs((double)__bfloat162float(got[e]) - want[e]);
    const double of_tolerance = error / (2e-3 + 0x1p-7 * std::fabs(want[e]));
    if (!(of_tolerance <= 1.0)) ok = false;  // NaN fails too
    result.max_error = std::max(result.max_error, std::isnan(error) ? INFINITY : error);
    result.worst_of_tolerance = std::max(result.worst_of_tolerance, std::isnan(of_tolerance) ? INFINITY : of_tolerance);
  }

  // timing: the flush (a write of more than L2) also keeps the device busy while the host
  // enqueues the call, so the events time the kernels alone
  void *start, *stop;
  TRY(tsr_event_create(ctx, &start));
  TRY(tsr_event_create(ctx, &stop));
  const int warmup = c.decode ? 5 : 2, runs = c.decode ? 30 : 10;
  std::vector<float> times;
  for (int i = 0; i < warmup + runs; ++i) {
    TRY(tsr_fill_uniform(ctx, (tsr_bf16*)flush, 1, flush_elements, flush_elements, 0, i, 0.f, 1.f));
    TRY(tsr_event_record(ctx, start));
    TRY(attention());
    TRY(tsr_event_record(ctx, stop));
    float ms = 0;
    TRY(tsr_event_elapsed(ctx, start, stop, &ms));
    if (i >= warmup) times.push_back(ms);
  }
  tsr_event_destroy(ctx, start);
  tsr_event_destroy(ctx, stop);
  std::sort(times.begin(), times.end());
  result.ms = times[times.size() / 2];
  result.rate = c.decode ? kv_bytes / (result.ms * 1e-3) / 1e9 : flops / (result.ms * 1e-3) / 1e12;
  result.pass = ok;
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  const char* filter = argc > 1 ? argv[1] : "";
  tsr_context* ctx = nullptr;
  if (tsr_context_create(0, &ctx) != TSR_OK) {
    std::fprintf(stderr, "tsr_context_create: %s\n", tsr_last_error());
    return 1;
  }

  const Heads llama{32, 8, 128, "Llama-3-8B 32/8 D128"};
  const Heads mha{32, 32, 64, "MHA 32/32 D64"};
  const Heads wide{16, 8, 256, "16/8 D256"};
  // one kv head: a block's keys are contiguous rows (the same bytes as Llama's 8 heads x 64)
  const Heads single{4, 1, 128, "4/1 D128"};
  auto prefill = [](int n) { return std::vector<Seq>{{0, n}}; };
  auto decode = [](int batch, int context) { return std::vector<Seq>(batch, Seq{context - 1, 1}); };
  const std::vector<Case> cases = {
      {llama, "prefill 1024", prefill(1024), false},
      {llama, "prefill 4096", prefill(4096), false},
      {llama, "prefill 8192", prefill(8192), false},
      {llama, "prefill 1000 (8-token ragged end)", prefill(1000), false},
      {llama, "chunked prefill 2048 after 2048", {{2048, 2048}}, false},
      {llama, "mixed 512 + 37@100 + 3 decodes", {{0, 512}, {255, 1}, {100, 37}, {2047, 1}, {0, 1}}, false},
      {llama, "decode 1 x 256", decode(1, 256), true},
      {llama, "decode 1 x 2048", decode(1, 2048), true},
      {llama, "decode 64 x 256", decode(64, 256), true},
      {llama, "decode 64 x 2048", decode(64, 2048), true},
      {llama, "decode 256 x 256", decode(256, 256), true},
      {llama, "decode 256 x 2048", decode(256, 2048), true},
      {single, "decode 512 x 256", decode(512, 256), true},
      {single, "decode 512 x 2048", decode(512, 2048), true},
      {mha, "prefill 4096", prefill(4096), false},
      {mha, "prefill 8 x 40 (blocks span seqs)", std::vector<Seq>(8, Seq{0, 40}), false},
      {mha, "decode 64 x 2048", decode(64, 2048), true},
      {wide, "prefill 4096", prefill(4096), false},
      {wide, "decode 64 x 2048", decode(64, 2048), true},
  };

  char device[256] = "?";
  tsr_device_name(ctx, device, sizeof device);
  int sms = 0, clock_khz = 0, memory_khz = 0, bus_bits = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0);
  cudaDeviceGetAttribute(&memory_khz, cudaDevAttrMemoryClockRate, 0);
  cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0);
  std::printf("%s, %d SMs\n", device, sms);
  std::printf("ceilings: HBM %.0f GB/s (memory clock x bus, double data rate); dense bf16 tensor cores %.0f TFLOP/s\n",
              2.0 * memory_khz * 1e3 * bus_bits / 8 / 1e9, (double)sms * 4096 * clock_khz * 1e3 / 1e12);
  std::printf("(4096 FLOP/clock/SM at the reported clock; mma.sync reaches about 2/3 of it)\n");
  const char* p_bf16 = getenv("TSR_ATTENTION_P_BF16");
  std::printf("prefill P.V: %s\n\n", p_bf16 != nullptr && std::strcmp(p_bf16, "0") != 0 ? "P in bf16 (TSR_ATTENTION_P_BF16)" : "P = hi + lo bf16");

  // more than the L2 cache (50 MB on H100)
  const size_t flush_elements = (size_t)128 << 20;
  void* flush = nullptr;
  if (tsr_malloc(ctx, &flush, flush_elements * sizeof(bf16)) != TSR_OK) {
    std::fprintf(stderr, "tsr_malloc (flush): %s\n", tsr_last_error());
    return 1;
  }

  std::printf("%-22s %-36s %9s %16s %10s %8s\n", "heads", "case", "ms", "rate", "max |err|", "err/tol");
  bool all_pass = true;
  unsigned seed = 1234;
  for (const Case& c : cases) {
    const std::string label = std::string(c.heads.name) + " " + c.what;
    if (label.find(filter) == std::string::npos) continue;
    const Result r = run_case(ctx, c, flush, flush_elements, seed += 7);
    if (!r.failure.empty()) {
      std::printf("%-22s %-36s FAIL: %s\n", c.heads.name, c.what.c_str(), r.failure.c_str());
      all_pass = false;
      continue;
    }
    char rate[32];
    std::snprintf(rate, sizeof rate, c.decode ? "%.0f GB/s" : "%.1f TFLOP/s", r.rate);
    std::printf("%-22s %-36s %9.4f %16s %10.2e %8.3f %s\n", c.heads.name, c.what.c_str(), r.ms, rate, r.max_error, r.worst_of_tolerance,
                r.pass ? "PASS" : "FAIL");
    all_pass = all_pass && r.pass;
  }
  tsr_free(ctx, flush);
  if (tsr_context_destroy(ctx) != TSR_OK) {
    std::fprintf(stderr, "tsr_context_destroy: %s\n", tsr_last_error());
    all_pass = false;
  }
  std::printf("\nattention_bench: %s\n", all_pass ? "PASS" : "FAIL");
  return all_pass ? 0 : 1;
}
