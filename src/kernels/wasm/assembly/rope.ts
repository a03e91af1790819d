// Rotary position embedding, rotate-half (NeoX) layout: dimension i pairs with i + D/2 and
// both turn by the angle positions[t] * invFreq[i].
//
// The angle is formed and its cosine and sine taken in f64: at position 10^5 an f32 angle is
// already off by ~4e-3 rad. One cos/sin pair serves every head of the token, so it is cheap.

export function rope(
  q: usize, k: usize, positions: usize, invFreq: usize,
  T: i32, Hq: i32, Hkv: i32, D: i32, qStride: i32, kStride: i32, begin: i32, end: i32
): void {
  const half = D >> 1
  const halfBytes = <usize>half << 2
  const headBytes = <usize>D << 2
  for (let t = begin; t < end; t++) {
    const pos = <f64>load<i32>(positions + (<usize>t << 2))
    const qRow = q + ((<usize>t * qStride) << 2)
    const kRow = k + ((<usize>t * kStride) << 2)
    let i = 0
    for (; i + 4 <= half; i += 4) {
      const f = invFreq + (<usize>i << 2)
      const a0 = pos * <f64>load<f32>(f), a1 = pos * <f64>load<f32>(f, 4)
      const a2 = pos * <f64>load<f32>(f, 8), a3 = pos * <f64>load<f32>(f, 12)
      const c = lanes(Math.cos(a0), Math.cos(a1), Math.cos(a2), Math.cos(a3))
      const s = lanes(Math.sin(a0), Math.sin(a1), Math.sin(a2), Math.sin(a3))
      rotate4(qRow, Hq, headBytes, halfBytes, <usize>i << 2, c, s)
      rotate4(kRow, Hkv, headBytes, halfBytes, <usize>i << 2, c, s)
    }
    for (; i < half; i++) {
      const angle = pos * <f64>load<f32>(invFreq + (<usize>i << 2))
      const c = <f32>Math.cos(angle)
      const s = <f32>Math.sin(angle)
      rotate1(qRow, Hq, headBytes, halfBytes, <usize>i << 2, c, s)
      rotate1(kRow, Hkv, headBytes, halfBytes, <usize>i << 2, c, s)
    }
  }
}

@inline
function lanes(a: f64, b: f64, c: f64, d: f64): v128 {
  let v = f32x4.splat(<f32>a)
  v = f32x4.replace_lane(v, 1, <f32>b)
  v = f32x4.replace_lane(v, 2, <f32>c)
  return f32x4.replace_lane(v, 3, <f32>d)
}

/** rotate dimensions [i, i+4) against [i+D/2, i+D/2+4) of every head of one token */
function rotate4(row: usize, heads: i32, headBytes: usize, halfBytes: usize, off: usize, c: v128, s: v128): void {
  for (let h = 0; h < heads; h++) {
    const p = row + <usize>h * headBytes + off
    const x1 = v128.load(p)
    const x2 = v128.load(p + halfBytes)
    v128.store(p, f32x4.sub(f32x4.mul(x1, c), f32x4.mul(x2, s)))
    v128.store(p + halfBytes, f32x4.add(f32x4.mul(x2, c), f32x4.mul(x1, s)))
  }
}

function rotate1(row: usize, heads: i32, headBytes: usize, halfBytes: usize, off: usize, c: f32, s: f32): void {
  for (let h = 0; h < heads; h++) {
    const p = row + <usize>h * headBytes + off
    const x1 = load<f32>(p)
    const x2 = load<f32>(p + halfBytes)
    store<f32>(p, x1 * c - x2 * s)
    store<f32>(p + halfBytes, x2 * c + x1 * s)
  }
}
