// Writing this step's keys and values into the paged KV cache.

import { rope } from "./rope"

/**
 * kCache[slots[t]] = k[t]; vCache[slots[t]] = v[t] for t in [begin, end). A token's Hkv * D
 * values are contiguous in k and in the cache slot, so each is one copy; k and v may be
 * views into a fused qkv row (kStride, vStride: floats between tokens). A negative slot
 * marks padding and is skipped.
 */
export function kv_write(
  kCache: usize, vCache: usize, k: usize, v: usize, slots: usize,
  T: i32, Hkv: i32, D: i32, kStride: i32, vStride: i32, begin: i32, end: i32
): void {
  const slotBytes = (<usize>Hkv * D) << 2
  for (let t = begin; t < end; t++) {
    const slot = load<i32>(slots + (<usize>t << 2))
    if (slot < 0) continue
    memory.copy(kCache + <usize>slot * slotBytes, k + ((<usize>t * kStride) << 2), slotBytes)
    memory.copy(vCache + <usize>slot * slotBytes, v + ((<usize>t * vStride) << 2), slotBytes)
  }
}

/** rope, then kv_write of the rotated keys and the values, for tokens [begin, end) */
export function rope_kv_write(
  q: usize, k: usize, kCache: usize, vCache: usize, v: usize, positions: usize, invFreq: usize, slots: usize,
  T: i32, Hq: i32, Hkv: i32, D: i32, qStride: i32, kStride: i32, vStride: i32, begin: i32, end: i32
): void {
  rope(q, k, positions, invFreq, T, Hq, Hkv, D, qStride, kStride, begin, end)
  kv_write(kCache, vCache, k, v, slots, T, Hkv, D, kStride, vStride, begin, end)
}
