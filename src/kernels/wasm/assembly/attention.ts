// Attention over the paged KV cache: one kernel for prefill, chunked prefill and decode.
// Query t of sequence s attends to keys 0..positions[t] of s (causal by construction).
//
// Softmax is online (running max and sum, output rescaled when the max grows), so the scores
// are never stored. The query heads of a GQA group are processed together, block by block,
// so each KV block is read from memory once per group, not once per query head.

import { axpy, dot, scale as scaleRow } from "./simd"
import { scratch, scratchBytes } from "./scratch"

export function paged_attention(
  out: usize, q: usize, kCache: usize, vCache: usize, queryToSeq: usize, positions: usize, blockTables: usize,
  T: i32, Hq: i32, Hkv: i32, D: i32, qStride: i32, maxBlocks: i32, blockSize: i32, scale: f32, maxQueryLen: i32, begin: i32, end: i32
): void {
  // maxQueryLen: one path serves every query length here
  const group = Hq / Hkv
  // running max and running sum of each query head of the group
  const maxes = scratch
  const sums = scratch + (<usize>group << 2)
  if ((<usize>group << 3) > scratchBytes) unreachable()
  const headBytes = <usize>D << 2
  const slotBytes = <usize>Hkv * headBytes
  // work items are (token, kv head) pairs: item = t * Hkv + g
  for (let item = begin; item < end; item++) {
    const t = item / Hkv
    const g = item % Hkv
    const seq = load<i32>(queryToSeq + (<usize>t << 2))
    const n = load<i32>(positions + (<usize>t << 2)) + 1
    const table = blockTables + ((<usize>seq * maxBlocks) << 2)
    const qg = q + ((<usize>t * qStride + <usize>g * group * D) << 2)
    const og = out + ((<usize>t * Hq + <usize>g * group) * headBytes)
    for (let i = 0; i < group; i++) {
      store<f32>(maxes + (<usize>i << 2), -Infinity)
      store<f32>(sums + (<usize>i << 2), 0)
    }
    memory.fill(og, 0, <usize>group * headBytes)
    for (let j0 = 0, b = 0; j0 < n; j0 += blockSize, b++) {
      const firstSlot = <usize>load<i32>(table + (<usize>b << 2)) * blockSize
      const kb = kCache + firstSlot * slotBytes + <usize>g * headBytes
      const vb = vCache + firstSlot * slotBytes + <usize>g * headBytes
      const count = min(blockSize, n - j0)
      for (let i = 0; i < group; i++) {
        const at = <usize>i << 2
        attendBlock(og + <usize>i * headBytes, qg + <usize>i * headBytes, kb, vb, count, slotBytes, D, scale, maxes + at, sums + at)
      }
    }
    for (let i = 0; i < group; i++) {
      scaleRow(og + <usize>i * headBytes, <f32>1 / load<f32>(sums + (<usize>i << 2)), D)
    }
  }
}

/** fold `count` consecutive keys of one block into one head's output and its running max and sum */
function attendBlock(
  o: usize, qh: usize, kb: usize, vb: usize, count: i32, slotBytes: usize, D: i32, scale: f32, maxAt: usize, sumAt: usize
): void {
  let m = load<f32>(maxAt)
  let l = load<f32>(sumAt)
  for (let c = 0; c < count; c++) {
    const off = <usize>c * slotBytes
    const s = dot(qh, kb + off, D) * scale
    if (s > m) {
      const correction = Mathf.exp(m - s)
      if (l > 0) scaleRow(o, correction, D)
      l *= correction
      m = s
    }
    const p = Mathf.exp(s - m)
    l += p
    axpy(o, p, vb + off, D)
  }
  store<f32>(maxAt, m)
  store<f32>(sumAt, l)
}
