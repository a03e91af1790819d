// RMSNorm, as HF computes it: x / sqrt(mean(x^2) + eps), then times the weight.

import { fold } from "./simd"

/** out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w for rows t in [begin, end); out may alias x */
export function rmsnorm(out: usize, x: usize, w: usize, T: i32, H: i32, eps: f32, begin: i32, end: i32): void {
  const rowBytes = <usize>H << 2
  for (let t = begin; t < end; t++) {
    const row = x + <usize>t * rowBytes
    const inv = invRms(sumSquares(row, H), H, eps)
    scaleByWeight(out + <usize>t * rowBytes, row, w, inv, H)
  }
}

/**
 * residualOut[t] = (accumulate ? residualIn[t] : 0) + x[t]; out[t] = rmsnorm(residualOut[t]) * w; out may alias
 * x, residualOut residualIn
 */
export function add_rmsnorm(
  out: usize,
  residualOut: usize,
  residualIn: usize,
  x: usize,
  w: usize,
  T: i32,
  H: i32,
  eps: f32,
  accumulate: i32,
  begin: i32,
  end: i32
): void {
  const rowBytes = <usize>H << 2
  const bytes4 = <usize>(H & ~3) << 2
  for (let t = begin; t < end; t++) {
    const r = residualOut + <usize>t * rowBytes
    const rIn = residualIn + <usize>t * rowBytes
    const xr = x + <usize>t * rowBytes
    // one pass: the new residual is stored and squared while it is in registers; a residual not
    // started yet is read as zeros (adding them keeps x's bits, -0 aside)
    const keep = accumulate != 0 ? v128.splat<i32>(-1) : v128.splat<i32>(0)
    let acc = f32x4.splat(0)
    let i: usize = 0
    for (; i < bytes4; i += 16) {
      const v = f32x4.add(v128.and(v128.load(rIn + i), keep), v128.load(xr + i))
      v128.store(r + i, v)
      acc = f32x4.add(acc, f32x4.mul(v, v))
    }
    let sum = fold(acc)
    for (; i < rowBytes; i += 4) {
      const v = (accumulate != 0 ? load<f32>(rIn + i) : <f32>0) + load<f32>(xr + i)
      store<f32>(r + i, v)
      sum += v * v
    }
    scaleByWeight(out + <usize>t * rowBytes, r, w, invRms(sum, H, eps), H)
  }
}

/**
 * Per-head RMSNorm in place (Qwen3's q and k norm): every head of length D of token t, whose
 * row starts at t * stride floats (a view into the fused qkv row), is normalised with w[D]
 */
export function head_rmsnorm(x: usize, w: usize, T: i32, nHeads: i32, D: i32, stride: i32, eps: f32, begin: i32, end: i32): void {
  const headBytes = <usize>D << 2
  for (let t = begin; t < end; t++) {
    const row = x + ((<usize>t * stride) << 2)
    for (let h = 0; h < nHeads; h++) {
      const head = row + <usize>h * headBytes
      scaleByWeight(head, head, w, invRms(sumSquares(head, D), D, eps), D)
    }
  }
}

@inline
function invRms(sumSquares: f32, H: i32, eps: f32): f32 {
  return <f32>1 / Mathf.sqrt(sumSquares / <f32>H + eps)
}

function sumSquares(row: usize, H: i32): f32 {
  const rowBytes = <usize>H << 2
  const bytes4 = <usize>(H & ~3) << 2
  let acc = f32x4.splat(0)
  let i: usize = 0
  for (; i < bytes4; i += 16) {
    const v = v128.load(row + i)
    acc = f32x4.add(acc, f32x4.mul(v, v))
  }
  let sum = fold(acc)
  for (; i < rowBytes; i += 4) {
    const v = load<f32>(row + i)
    sum += v * v
  }
  return sum
}

/** out[i] = (x[i] * inv) * w[i], in HF's order: normalise, then weight */
function scaleByWeight(out: usize, x: usize, w: usize, inv: f32, H: i32): void {
  const rowBytes = <usize>H << 2
  const bytes4 = <usize>(H & ~3) << 2
  const iv = f32x4.splat(inv)
  let i: usize = 0
  for (; i < bytes4; i += 16) v128.store(out + i, f32x4.mul(f32x4.mul(v128.load(x + i), iv), v128.load(w + i)))
  for (; i < rowBytes; i += 4) store<f32>(out + i, load<f32>(x + i) * inv * load<f32>(w + i))
}
