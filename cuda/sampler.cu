// tsr_sample_rows: src/sampling/sampler.ts ported operation for operation, so that a seeded
// request draws the same token on either side. One block per row. The elementwise steps
// (load, max, exp, min-p, argmax) and the reorderings into token-id order run on the whole
// block; the sums over the candidates are defined on both sides as SUM_CHUNKS chunk sums, each
// thread adding one chunk, then added in order by thread 0 (the draw's total and cumulative mass)
// or as a binary tree over the block (the masses top-k and top-p compare: tree_mass); top-k /
// top-p keep a set defined by those masses alone, which the block finds by bisection over the
// values (the CPU sorts them instead). Rounding then matches the CPU's except
// where exp() itself differs (CUDA's double exp is within 1 ulp, so is the C library's):
// a last-bit difference in one probability changes the token only if the draw lands within
// about 1e-16 (relative) of a boundary.
#include <cstdint>

#include "common.cuh"
#include "context.cuh"
#include "sampler.h"

namespace {

constexpr int kThreads = 1024;
constexpr int kSumChunks = 1024;  // SUM_CHUNKS of src/sampling/sampler.ts: one chunk a thread
static_assert(kSumChunks == kThreads, "chunked_total gives each thread one chunk");
constexpr double kGreedyEps = 1e-5;  // GREEDY_TEMPERATURE_EPS

// ---- Philox4x32-10, as src/sampling/philox.ts ----
constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

__device__ double philox_uniform(uint32_t key0, uint32_t key1, uint32_t c0, uint32_t c1) {
  uint32_t x0 = c0, x1 = c1, x2 = 0, x3 = 0;
#pragma unroll
  for (int round = 0; round < 10; round++) {
    const uint32_t hi0 = __umulhi(kPhiloxM0, x0);
    const uint32_t lo0 = kPhiloxM0 * x0;
    const uint32_t hi1 = __umulhi(kPhiloxM1, x2);
    const uint32_t lo1 = kPhiloxM1 * x2;
    x0 = hi1 ^ x1 ^ key0;
    x1 = lo1;
    x2 = hi0 ^ x3 ^ key1;
    x3 = lo0;
    key0 += kPhiloxW0;
    key1 += kPhiloxW1;
  }
  // 27 bits of word 0, 26 of word 1: an exact 53-bit integer times 2^-53
  const uint64_t bits = ((uint64_t)(x0 >> 5) << 26) | (uint64_t)(x1 >> 6);
  return (double)bits * 0x1p-53;
}

struct RowScratch {
  double* w;   // [V] logits, then exp((x - max) / T)
  double* cv;  // [V] values of the candidates
  int* c;      // [V] candidate ids
  uint8_t* f;  // [V] flags of kept ids
};

// Each thread's `mine` in, in thread order: returns its exclusive prefix sum and sets *total, on
// every thread. slots: kThreads + 1 ints of shared memory; whoever writes them next synchronizes
// first (as this does), so every thread has read them by then.
__device__ int block_exclusive_scan(int mine, int* slots, int* total) {
  __syncthreads();  // a previous reader of slots is done
  slots[threadIdx.x] = mine;
  __syncthreads();
  if (threadIdx.x == 0) {
    int sum = 0;
    for (int t = 0; t < kThreads; t++) {
      const int n = slots[t];
      slots[t] = sum;
      sum += n;
    }
    slots[kThreads] = sum;
  }
  __syncthreads();
  *total = slots[kThreads];
  return slots[threadIdx.x];
}

// Writes the ids i in [0, V) with keep(i), in id order, to c (and w[i] to cv); returns the
// count to every thread. Each thread takes one contiguous chunk; an exclusive scan of the
// chunks' counts places them. With `identity_allowed`, a row that keeps every id writes
// nothing: its candidates are the ids themselves and their values w (the caller's `identity`).
template <typename Keep>
__device__ int compact(const RowScratch& s, int V, Keep keep, int* counts, bool identity_allowed = false) {
  const int chunk = (V + kThreads - 1) / kThreads;
  const int begin = min(V, (int)threadIdx.x * chunk), end = min(V, begin + chunk);
  int mine = 0;
  for (int i = begin; i < end; i++) mine += keep(i) ? 1 : 0;
  int total = 0;
  int at = block_exclusive_scan(mine, counts, &total);
  if (identity_allowed && total == V) {
    __syncthreads();  // every thread has read the total before a later call rewrites counts
    return V;
  }
  for (int i = begin; i < end; i++) {
    if (keep(i)) {
      s.c[at] = i;
      s.cv[at] = s.w[i];
      at++;
    }
  }
  __syncthreads();
  return total;
}

// the chunk sums added in order (Sampler.chunkedTotal's last step), by one thread
__device__ double ordered_total(const double* sums) {
  double total = 0;
  for (int k = 0; k < kSumChunks; k++) total += sums[k];
  return total;
}

// Sampler.chunkedTotal over the candidates' values cv[0, n): thread t adds chunk t in order into
// sums[t], thread 0 the chunk sums in order. The total is thread 0's; sums stay for the draw.
__device__ double chunked_total(const double* cv, int n, double* sums) {
  const int size = (n + kSumChunks - 1) / kSumChunks;
  const int begin = min(n, (int)threadIdx.x * size), end = min(n, begin + size);
  double sum = 0;
  for (int j = begin; j < end; j++) sum += cv[j];
  __syncthreads();  // a previous call's reader is done with sums
  sums[threadIdx.x] = sum;
  __syncthreads();
  return threadIdx.x == 0 ? ordered_total(sums) : 0;
}

// Sampler.treeMass over the candidates cv[0, n) that `member(j)` keeps: thread t adds chunk t's
// members in order into sums[t] (the chunks of chunked_total), then the 1024 chunk sums are added
// as a fixed binary tree (sums[i] += sums[i + stride], stride 512 down to 1). Every thread gets
// the mass and the members' count.
template <typename Member>
__device__ double tree_mass(const double* cv, int n, Member member, double* sums, int* counts, long long* count) {
  const int size = (n + kSumChunks - 1) / kSumChunks;
  const int begin = min(n, (int)threadIdx.x * size), end = min(n, begin + size);
  double sum = 0;
  int mine = 0;
  for (int j = begin; j < end; j++) {
    if (member(j)) {
      sum += cv[j];
      mine++;
    }
  }
  __syncthreads();  // a previous call's readers are done with sums and counts
  sums[threadIdx.x] = sum;
  counts[threadIdx.x] = mine;
  __syncthreads();
  for (int stride = kSumChunks / 2; stride > 0; stride >>= 1) {
    if ((int)threadIdx.x < stride) {
      sums[threadIdx.x] += sums[threadIdx.x + stride];
      counts[threadIdx.x] += counts[threadIdx.x + stride];
    }
    __syncthreads();
  }
  *count = counts[0];
  return sums[0];
}

__device__ __forceinline__ unsigned long long key_of(double x) { return (unsigned long long)__double_as_longlong(x); }

// Sampler.keepMostProbable: flags f[id] = 1 for the shortest prefix of the candidates (cv, ids c,
// id order, all values > 0) in (value desc, id asc) order that has maxCount members or a tree
// mass of topP x the tree mass of them all. The prefix is every value above a threshold t plus
// the lowest-id j of those equal to it: t by bisection over the bit patterns of positive doubles
// (ordered as the values are), j by bisection over the ties' ranks in id order. maxCount < 0: no
// count limit; topP >= 1: no mass limit. The flags must be 0 on entry.
__device__ void keep_most_probable(const RowScratch& s, int n, long long maxCount, double topP, double* sums, int* counts) {
  __shared__ double maxMass;
  const long long noLimit = 0x7fffffffffffffffLL;
  if (maxCount < 0) maxCount = noLimit;
  const int size = (n + kSumChunks - 1) / kSumChunks;
  const int begin = min(n, (int)threadIdx.x * size), end = min(n, begin + size);
  long long count = 0;
  if (topP < 1) {
    const double all = tree_mass(s.cv, n, [](int) { return true; }, sums, counts, &count);
    if (threadIdx.x == 0) maxMass = topP * all;
  } else if (threadIdx.x == 0) {
    maxMass = __builtin_huge_val();
  }
  __syncthreads();
  const double limit = maxMass;
  auto reaches = [&](auto member) {
    long long members = 0;
    const double mass = tree_mass(s.cv, n, member, sums, counts, &members);
    return members >= maxCount || mass >= limit;
  };
  // the largest key K with reaches({v : key(v) >= K}): lo always reaches (all candidates do),
  // hi never (no candidate: count 0 < maxCount, mass 0 < limit)
  double smallest = __builtin_huge_val(), largest = 0;
  for (int j = begin; j < end; j++) smallest = fmin(smallest, s.cv[j]), largest = fmax(largest, s.cv[j]);
  __shared__ double bounds[2][32];
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    smallest = fmin(smallest, __shfl_xor_sync(0xffffffffu, smallest, offset));
    largest = fmax(largest, __shfl_xor_sync(0xffffffffu, largest, offset));
  }
  if ((threadIdx.x & 31) == 0) bounds[0][threadIdx.x >> 5] = smallest, bounds[1][threadIdx.x >> 5] = largest;
  __syncthreads();
  for (int w = 0; w < kThreads / 32; w++) smallest = fmin(smallest, bounds[0][w]), largest = fmax(largest, bounds[1][w]);
  unsigned long long lo = key_of(smallest), hi = key_of(largest) + 1;
  while (hi - lo > 1) {
    const unsigned long long mid = lo + (hi - lo) / 2;
    if (reaches([&](int j) { return key_of(s.cv[j]) >= mid; })) lo = mid;
    else hi = mid;
  }
  const unsigned long long threshold = lo;  // a candidate's value: the set changes there
  // ties at the threshold, ranked in id order: this chunk's first rank
  int ties = 0;
  for (int j = begin; j < end; j++) ties += key_of(s.cv[j]) == threshold ? 1 : 0;
  int allTies = 0;
  const int tieBase = block_exclusive_scan(ties, counts, &allTies);
  // members: above the threshold, or one of its first `taken` ties. Asked about this thread's
  // chunk once an element in id order (as tree_mass does), so it counts the ties as it goes.
  const double* cv = s.cv;
  auto prefix = [cv, threshold, taken_base = tieBase](int taken) {
    return [cv, threshold, taken, rank = taken_base](int j) mutable {
      const unsigned long long key = key_of(cv[j]);
      if (key != threshold) return key > threshold;
      return rank++ < taken;
    };
  };
  // the fewest ties that reach: 0 never does (the set above the threshold does not), allTies does
  int tlo = 0, thi = allTies;
  while (thi - tlo > 1) {
    const int mid = tlo + (thi - tlo) / 2;
    if (reaches(prefix(mid))) thi = mid;
    else tlo = mid;
  }
  auto kept = prefix(thi);
  for (int j = begin; j < end; j++) {
    if (kept(j)) s.f[s.c[j]] = 1;
  }
  __syncthreads();
}

// Sampler.argmax over w: the first maximum, NaNs never win, 0 when w[0] is NaN or all are NaN
__device__ int block_argmax(const double* w, int V, double* redValue, int* redIndex) {
  double best = -__builtin_huge_val();
  int at = 0x7fffffff;
  for (int i = threadIdx.x; i < V; i += kThreads) {
    const double x = w[i];
    if (x > best || (x == best && i < at)) {
      best = x;
      at = i;
    }
  }
  auto better = [](double& b, int& a, double ob, int oa) {
    if (ob > b || (ob == b && oa < a)) {
      b = ob;
      a = oa;
    }
  };
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) better(best, at, __shfl_xor_sync(0xffffffffu, best, offset), __shfl_xor_sync(0xffffffffu, at, offset));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) {
    redValue[warp] = best;
    redIndex[warp] = at;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int k = 1; k < kThreads / 32; k++) better(best, at, redValue[k], redIndex[k]);
    redIndex[0] = (at == 0x7fffffff || w[0] != w[0]) ? 0 : at;
  }
  __syncthreads();
  const int result = redIndex[0];
  __syncthreads();
  return result;
}

// one edit of phase `phase` with value v to a logit
__device__ __forceinline__ double edited(double w, int phase, double v) {
  if (phase == 0) return __dadd_rn(w, v);
  if (phase == 1) return -__builtin_huge_val();
  if (phase == 2) return w > 0 ? __ddiv_rn(w, v) : __dmul_rn(w, v);
  return __dsub_rn(w, v);
}

// Sampler.applyLogitsProcessors as edits (sampler.h, src/sampling/logitsEdits.ts): the phases
// in the CPU's order, each one's ids distinct, so a phase runs over the block. Single float64
// operations, as the CPU's: the frequency / presence value was multiplied and added on the host.
__device__ void apply_edits(double* w, int V, const int32_t* offsets, const int32_t* ids, const double* values) {
  for (int phase = 0; phase < 4; phase++) {
    for (int e = offsets[phase] + threadIdx.x; e < offsets[phase + 1]; e += kThreads) {
      const int id = ids[e];
      if (id < 0 || id >= V) continue;  // the CPU's typed-array write ignores it
      w[id] = edited(w[id], phase, values[e]);
    }
    __syncthreads();
  }
}

// ---- the common row, spread over blocks ----
//
// A row drawn at a temperature with no top-k or top-p, whose ids min-p all keeps (temperature
// alone: OpenAI's defaults), is drawn from w = exp((x - max) / T) and its chunk sums alone. Its
// passes over the vocabulary (load, edits, max, exp, the chunk sums and min-p's count) need not
// run on the one block of its row: sample_parts_max_kernel and sample_parts_exp_kernel run them
// on kParts blocks a row (the max between the two), block p
// doing what threads [p kPartThreads, (p + 1) kPartThreads) of the row's block would (the same
// chunks, each summed in order by one thread), so the sums are the same bits. sample_rows_kernel
// then adds the chunk sums in order and draws, as before; any other row it makes from the start.
constexpr int kParts = 32;
constexpr int kPartThreads = kThreads / kParts;  // one warp
static_assert(kPartThreads == 32, "a part is one warp");

// whether a row's top-k and top-p leave every id to min-p (the draw may then read w itself)
__device__ __forceinline__ bool no_top_k_or_p(int k, double topP, int V) { return !(k > 0 && k < V) && !(topP < 1); }

template <typename Logit>
__global__ void __launch_bounds__(kPartThreads) sample_parts_max_kernel(const Logit* logits, int V, const double* temperature, const double* top_p, const int32_t* top_k, const int32_t* edit_offsets, const int32_t* edit_ids, const double* edit_values, double* work, double* part_max) {
  const int row = blockIdx.x, part = blockIdx.y, lane = threadIdx.x;
  const double T = temperature[row];
  if (T < kGreedyEps || !no_top_k_or_p(top_k[row], top_p[row], V)) return;  // sample_rows_kernel's own
  const size_t base = (size_t)row * V;
  double* w = work + base;
  const Logit* x = logits + base;
  const int size = (V + kThreads - 1) / kThreads;  // compact's and chunked_total's chunk, n = V
  const int begin = min(V, part * kPartThreads * size), end = min(V, (part + 1) * kPartThreads * size);
  for (int i = begin + lane; i < end; i += kPartThreads) w[i] = (double)(float)x[i];
  __syncwarp();
  if (edit_offsets != nullptr) {
    // apply_edits, for the ids of this part: each id's edits in the same phase order
    const int32_t* offsets = edit_offsets + 4 * row;
    for (int phase = 0; phase < 4; phase++) {
      for (int e = offsets[phase] + lane; e < offsets[phase + 1]; e += kPartThreads) {
        const int id = edit_ids[e];
        if (id >= begin && id < end) w[id] = edited(w[id], phase, edit_values[e]);
      }
      __syncwarp();
    }
  }
  double top = -__builtin_huge_val();
  for (int i = begin + lane; i < end; i += kPartThreads) top = fmax(top, w[i]);
  top = tsr::warp_max(top);
  if (lane == 0) part_max[row * kParts + part] = top;
}

// the row's max from its parts' (fmax: the order does not matter, NaNs are dropped as before)
__device__ __forceinline__ double row_max(const double* part_max, int row) {
  double top = -__builtin_huge_val();
  for (int p = 0; p < kParts; p++) top = fmax(top, part_max[row * kParts + p]);
  return top;
}

// The second half of a part: w = exp((w - max) / T), then thread t's chunk of the row's block
// (t = part kPartThreads + lane) summed in order, and how many of its ids min-p keeps.
__global__ void __launch_bounds__(kPartThreads) sample_parts_exp_kernel(int V, const double* temperature, const double* top_p, const int32_t* top_k, const double* min_p, double* work, const double* part_max, int* part_kept, double* chunk_sums) {
  const int row = blockIdx.x, part = blockIdx.y, lane = threadIdx.x;
  const double T = temperature[row];
  if (T < kGreedyEps || !no_top_k_or_p(top_k[row], top_p[row], V)) return;
  const double top = row_max(part_max, row);
  if (top == -__builtin_huge_val()) return;  // sample_rows_kernel's own (an argmax)
  double* w = work + (size_t)row * V;
  const int size = (V + kThreads - 1) / kThreads;
  const int begin = min(V, part * kPartThreads * size), end = min(V, (part + 1) * kPartThreads * size);
  for (int i = begin + lane; i < end; i += kPartThreads) w[i] = exp((w[i] - top) / T);  // a division, as the CPU
  __syncwarp();
  const double minP = min_p[row];
  const int t = part * kPartThreads + lane;
  const int chunk_begin = min(V, t * size), chunk_end = min(V, chunk_begin + size);
  double sum = 0;
  int kept = 0;
  for (int j = chunk_begin; j < chunk_end; j++) {
    const double e = w[j];
    sum += e;
    kept += e > 0 && e >= minP ? 1 : 0;
  }
  chunk_sums[(size_t)row * kThreads + t] = sum;
  kept = tsr::warp_sum(kept);
  if (lane == 0) part_kept[row * kParts + part] = kept;
}

// Sampler.draw, by one thread: the target u x total; whole chunks skipped by their sums, the one
// the target falls in scanned. values[0, n), their ids `ids` (null: the ids are the indices).
__device__ int draw(const double* values, const int* ids, int n, const double* sums, double total, double u) {
  const double target = u * total;
  const int size = (n + kSumChunks - 1) / kSumChunks;
  double cumulative = 0;
  for (int chunk = 0; chunk < kSumChunks; chunk++) {
    if (cumulative + sums[chunk] > target) {
      for (int j = chunk * size, end = min(n, (chunk + 1) * size); j < end; j++) {
        cumulative += values[j];
        if (cumulative > target) return ids ? ids[j] : j;
      }
    } else {
      cumulative += sums[chunk];
    }
  }
  return n > 0 ? (ids ? ids[n - 1] : n - 1) : 0;
}

// Logits is float (f32 logits) or bf16 (the model's own, widened exactly as the host's copy).
template <typename Logit>
__global__ void __launch_bounds__(kThreads) sample_rows_kernel(const Logit* logits, int V, const double* temperature, const double* top_p, const int32_t* top_k, const double* min_p, const uint32_t* seed_lo, const uint32_t* seed_hi, const int32_t* position, const int32_t* sample_index, const int32_t* edit_offsets, const int32_t* edit_ids, const double* edit_values, int32_t* out, double* work, double* cvals, int* cands, uint8_t* flags, const double* part_max, const int* part_kept, const double* chunk_sums) {
  __shared__ int counts[kThreads + 1];
  __shared__ double redValue[32];
  __shared__ int redIndex[32];
  __shared__ double sums[kSumChunks];
  const int row = blockIdx.x;
  const size_t base = (size_t)row * V;
  const RowScratch s{work + base, cvals + base, cands + base, flags + base};
  // the row's uniform, keyed (seed, position, sample index) as on the CPU
  auto uniform = [&] { return philox_uniform(seed_lo[row], seed_hi[row], (uint32_t)position[row], (uint32_t)sample_index[row]); };
  // the common row, whose passes the parts kernels made: w is exp((x - max) / T) and min-p kept
  // every id, so its candidates are the ids and its sums the parts' chunk sums
  if (temperature[row] >= kGreedyEps && no_top_k_or_p(top_k[row], top_p[row], V) && row_max(part_max, row) != -__builtin_huge_val()) {
    int kept = 0;
    for (int p = 0; p < kParts; p++) kept += part_kept[row * kParts + p];
    if (kept == V) {
      sums[threadIdx.x] = chunk_sums[(size_t)row * kThreads + threadIdx.x];
      __syncthreads();
      if (threadIdx.x == 0) out[row] = draw(s.w, nullptr, V, sums, ordered_total(sums), uniform());
      return;
    }
  }
  const Logit* x = logits + base;
  for (int i = threadIdx.x; i < V; i += kThreads) s.w[i] = (double)(float)x[i];
  __syncthreads();
  if (edit_offsets != nullptr) apply_edits(s.w, V, edit_offsets + 4 * row, edit_ids, edit_values);
  const double T = temperature[row];
  if (T < kGreedyEps) {
    const int best = block_argmax(s.w, V, redValue, redIndex);
    if (threadIdx.x == 0) out[row] = best;
    return;
  }
  // max, NaNs skipped (fmax drops a NaN operand), as `if (w[i] > max)`
  double top = -__builtin_huge_val();
  for (int i = threadIdx.x; i < V; i += kThreads) top = fmax(top, s.w[i]);
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) top = fmax(top, __shfl_xor_sync(0xffffffffu, top, offset));
  if ((threadIdx.x & 31) == 0) redValue[threadIdx.x >> 5] = top;
  __syncthreads();
  top = redValue[0];
  for (int k = 1; k < kThreads / 32; k++) top = fmax(top, redValue[k]);
  __syncthreads();
  if (top == -__builtin_huge_val()) {
    const int best = block_argmax(s.w, V, redValue, redIndex);
    if (threadIdx.x == 0) out[row] = best;
    return;
  }
  const double minP = min_p[row];
  for (int i = threadIdx.x; i < V; i += kThreads) s.w[i] = exp((s.w[i] - top) / T);  // a division, as the CPU
  __syncthreads();
  const int k = top_k[row];
  const double topP = top_p[row];
  // Rows that keep every id after min-p (the common temperature-only row, or min-p 0) and have
  // no top-k or top-p to apply need no candidate list: sums and the draw read w and return the
  // index itself, as reading the list would (it is the identity). That saves a row's writes of
  // 12 bytes an id and their reads.
  const bool identity_allowed = no_top_k_or_p(k, topP, V);
  int n = compact(s, V, [&](int i) { const double e = s.w[i]; return e > 0 && e >= minP; }, counts, identity_allowed);
  const bool identity = identity_allowed && n == V;
  // keeps the most probable candidates (maxCount of them, or a share of their mass), in id order
  auto keepAndReorder = [&](long long maxCount, double massShare) {
    for (int i = threadIdx.x; i < V; i += kThreads) s.f[i] = 0;
    __syncthreads();
    keep_most_probable(s, n, maxCount, massShare, sums, counts);
    n = compact(s, V, [&](int i) { return s.f[i] != 0; }, counts);
  };
  if (k > 0 && k < n) keepAndReorder(k, 1);
  if (topP < 1) keepAndReorder(-1, topP);
  const double* values = identity ? s.w : s.cv;
  const double total = chunked_total(values, n, sums);
  if (threadIdx.x == 0) out[row] = draw(values, identity ? nullptr : s.c, n, sums, total, uniform());
}

template <typename Logit>
int sample_rows(tsr_context* ctx, const Logit* logits, int rows, int vocab, const double* temperature, const double* top_p, const int32_t* top_k, const double* min_p, const uint32_t* seed_lo, const uint32_t* seed_hi, const int32_t* position, const int32_t* sample_index, const int32_t* edit_offsets, const int32_t* edit_ids, const double* edit_values, int32_t* out_tokens) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(rows >= 0 && vocab > 0, "tsr_sample_rows: rows %d, vocab %d", rows, vocab);
  if (rows == 0) return TSR_OK;
  TSR_REQUIRE(logits && temperature && top_p && top_k && min_p && seed_lo && seed_hi && position && sample_index && out_tokens, "tsr_sample_rows: null pointer");
  TSR_REQUIRE(edit_offsets == nullptr || (edit_ids && edit_values), "tsr_sample_rows: edit offsets without ids or values");
  const size_t elements = (size_t)rows * vocab;
  // the rows' arrays, then the parts' (maxima, kept counts, chunk sums), doubles first
  const size_t part_bytes = (size_t)rows * (kParts * sizeof(double) + kThreads * sizeof(double) + kParts * sizeof(int));
  void* scratch = nullptr;
  if (int status = tsr::sampler_scratch(ctx, elements * (2 * sizeof(double) + sizeof(int) + 1) + part_bytes + 16, &scratch)) return status;
  double* work = (double*)scratch;
  double* cvals = work + elements;
  int* cands = (int*)(cvals + elements);
  uint8_t* flags = (uint8_t*)(cands + elements);
  double* part_max = (double*)(((uintptr_t)(flags + elements) + 15) & ~(uintptr_t)15);
  double* chunk_sums = part_max + (size_t)rows * kParts;
  int* part_kept = (int*)(chunk_sums + (size_t)rows * kThreads);
  const dim3 parts(rows, kParts);
  sample_parts_max_kernel<Logit><<<parts, kPartThreads, 0, ctx->stream>>>(logits, vocab, temperature, top_p, top_k, edit_offsets, edit_ids, edit_values, work, part_max);
  sample_parts_exp_kernel<<<parts, kPartThreads, 0, ctx->stream>>>(vocab, temperature, top_p, top_k, min_p, work, part_max, part_kept, chunk_sums);
  sample_rows_kernel<Logit><<<rows, kThreads, 0, ctx->stream>>>(logits, vocab, temperature, top_p, top_k, min_p, seed_lo, seed_hi, position, sample_index, edit_offsets, edit_ids, edit_values, out_tokens, work, cvals, cands, flags, part_max, part_kept, chunk_sums);
  return tsr::check(cudaGetLastError(), "tsr_sample_rows: launch");
}

}  // namespace

extern "C" int tsr_sample_rows(tsr_context* ctx, const float* logits, int rows, int vocab, const double* temperature, const double* top_p, const int32_t* top_k, const double* min_p, const uint32_t* seed_lo, const uint32_t* seed_hi, const int32_t* position, const int32_t* sample_index, const int32_t* edit_offsets, const int32_t* edit_ids, const double* edit_values, int32_t* out_tokens) {
  return sample_rows(ctx, logits, rows, vocab, temperature, top_p, top_k, min_p, seed_lo, seed_hi, position, sample_index, edit_offsets, edit_ids, edit_values, out_tokens);
}

extern "C" int tsr_sample_rows_bf16(tsr_context* ctx, const tsr_bf16* logits, int rows, int vocab, const double* temperature, const double* top_p, const int32_t* top_k, const double* min_p, const uint32_t* seed_lo, const uint32_t* seed_hi, const int32_t* position, const int32_t* sample_index, const int32_t* edit_offsets, const int32_t* edit_ids, const double* edit_values, int32_t* out_tokens) {
  return sample_rows(ctx, logits, rows, vocab, temperature, top_p, top_k, min_p, seed_lo, seed_hi, position, sample_index, edit_offsets, edit_ids, edit_values, out_tokens);
}
