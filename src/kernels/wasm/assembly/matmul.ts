// Linear layers: out[M,N] = x[M,K] @ w[N,K]^T, and the bias add.
//
// With few rows of x (decode) this is bound by memory bandwidth: each weight row must be read
// from memory once per call and used for every row of x while it is in cache. So the loop
// over weight rows is outermost, and register tiles of 4 weight rows x 2 rows of x reuse
// every load. With many rows of x (prefill), x is cut into tiles that stay in L2 while the
// weights stream past once per tile.
//
// Every output element is summed in the same order (one 4-lane accumulator over k, folded,
// then the scalar tail) whichever tile computes it, so splitting N over threads never
// changes a bit of the result.

import { fold } from "./simd"

/** bytes of x kept in L2 while the weight rows stream past */
const X_TILE_BYTES: i32 = 256 * 1024

export function matmul(out: usize, x: usize, w: usize, M: i32, N: i32, K: i32, begin: i32, end: i32): void {
  const rowBytes = <usize>K << 2
  const mTile = max(2, X_TILE_BYTES / max(K << 2, 1))
  for (let m0 = 0; m0 < M; m0 += mTile) {
    const m1 = min(M, m0 + mTile)
    let n = begin
    for (; n + 4 <= end; n += 4) {
      const wn = w + <usize>n * rowBytes
      let m = m0
      for (; m + 2 <= m1; m += 2) rows4x2(out + ((<usize>m * N + n) << 2), x + <usize>m * rowBytes, wn, N, K)
      if (m < m1) rows4x1(out + ((<usize>m * N + n) << 2), x + <usize>m * rowBytes, wn, K)
    }
    for (; n < end; n++) {
      const wn = w + <usize>n * rowBytes
      for (let m = m0; m < m1; m++) store<f32>(out + ((<usize>m * N + n) << 2), rows1x1(x + <usize>m * rowBytes, wn, K))
    }
  }
}

/** x[m,n] += bias[n] for rows m in [begin, end) */
export function add_bias(x: usize, bias: usize, M: i32, N: i32, begin: i32, end: i32): void {
  const rowBytes = <usize>N << 2
  const bytes4 = <usize>(N & ~3) << 2
  for (let m = begin; m < end; m++) {
    const row = x + <usize>m * rowBytes
    let i: usize = 0
    for (; i < bytes4; i += 16) v128.store(row + i, f32x4.add(v128.load(row + i), v128.load(bias + i)))
    for (; i < rowBytes; i += 4) store<f32>(row + i, load<f32>(row + i) + load<f32>(bias + i))
  }
}

/** fold a dot product's accumulator and add the k % 4 tail, starting at byte k */
@inline
function finish(acc: v128, x: usize, w: usize, k: usize, rowBytes: usize): f32 {
  let sum = fold(acc)
  for (; k < rowBytes; k += 4) sum += load<f32>(x + k) * load<f32>(w + k)
  return sum
}

/** 4 weight rows (w0..w0+3) x 2 rows of x (x0, x0+1): o[0..3] and o[N..N+3] */
function rows4x2(o: usize, x0: usize, w0: usize, N: i32, K: i32): void {
  const rowBytes = <usize>K << 2
  const k4 = <usize>(K & ~3) << 2
  const x1 = x0 + rowBytes
  const w1 = w0 + rowBytes
  const w2 = w1 + rowBytes
  const w3 = w2 + rowBytes
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0
  let b0 = a0, b1 = a0, b2 = a0, b3 = a0
  for (let k: usize = 0; k < k4; k += 16) {
    const xa = v128.load(x0 + k)
    const xb = v128.load(x1 + k)
    let wv = v128.load(w0 + k)
    a0 = f32x4.add(a0, f32x4.mul(xa, wv))
    b0 = f32x4.add(b0, f32x4.mul(xb, wv))
    wv = v128.load(w1 + k)
    a1 = f32x4.add(a1, f32x4.mul(xa, wv))
    b1 = f32x4.add(b1, f32x4.mul(xb, wv))
    wv = v128.load(w2 + k)
    a2 = f32x4.add(a2, f32x4.mul(xa, wv))
    b2 = f32x4.add(b2, f32x4.mul(xb, wv))
    wv = v128.load(w3 + k)
    a3 = f32x4.add(a3, f32x4.mul(xa, wv))
    b3 = f32x4.add(b3, f32x4.mul(xb, wv))
  }
  const o1 = o + (<usize>N << 2)
  store<f32>(o, finish(a0, x0, w0, k4, rowBytes))
  store<f32>(o, finish(a1, x0, w1, k4, rowBytes), 4)
  store<f32>(o, finish(a2, x0, w2, k4, rowBytes), 8)
  store<f32>(o, finish(a3, x0, w3, k4, rowBytes), 12)
  store<f32>(o1, finish(b0, x1, w0, k4, rowBytes))
  store<f32>(o1, finish(b1, x1, w1, k4, rowBytes), 4)
  store<f32>(o1, finish(b2, x1, w2, k4, rowBytes), 8)
  store<f32>(o1, finish(b3, x1, w3, k4, rowBytes), 12)
}

/** 4 weight rows x 1 row of x: o[0..3]; the mat-vec of decode with batch 1 */
function rows4x1(o: usize, x: usize, w0: usize, K: i32): void {
  const rowBytes = <usize>K << 2
  const k4 = <usize>(K & ~3) << 2
  const w1 = w0 + rowBytes
  const w2 = w1 + rowBytes
  const w3 = w2 + rowBytes
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0
  for (let k: usize = 0; k < k4; k += 16) {
    const xv = v128.load(x + k)
    a0 = f32x4.add(a0, f32x4.mul(xv, v128.load(w0 + k)))
    a1 = f32x4.add(a1, f32x4.mul(xv, v128.load(w1 + k)))
    a2 = f32x4.add(a2, f32x4.mul(xv, v128.load(w2 + k)))
    a3 = f32x4.add(a3, f32x4.mul(xv, v128.load(w3 + k)))
  }
  store<f32>(o, finish(a0, x, w0, k4, rowBytes))
  store<f32>(o, finish(a1, x, w1, k4, rowBytes), 4)
  store<f32>(o, finish(a2, x, w2, k4, rowBytes), 8)
  store<f32>(o, finish(a3, x, w3, k4, rowBytes), 12)
}

/** one weight row x one row of x: the N % 4 leftover rows */
function rows1x1(x: usize, w: usize, K: i32): f32 {
  const rowBytes = <usize>K << 2
  const k4 = <usize>(K & ~3) << 2
  let a = f32x4.splat(0)
  for (let k: usize = 0; k < k4; k += 16) a = f32x4.add(a, f32x4.mul(v128.load(x + k), v128.load(w + k)))
  return finish(a, x, w, k4, rowBytes)
}
