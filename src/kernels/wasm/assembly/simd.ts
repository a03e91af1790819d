// Shared SIMD helpers. Every reduction here has one fixed order, so a value never depends
// on which thread or which tile computed it.

/** lane0 + lane1 + lane2 + lane3, folded pairwise */
@inline
export function fold(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3))
}

/** sum of a[i] * b[i] for n f32 elements: two 4-lane accumulators (to hide add latency), then the tail */
export function dot(a: usize, b: usize, n: i32): f32 {
  const bytes = <usize>n << 2
  const bytes8 = <usize>(n & ~7) << 2
  let acc0 = f32x4.splat(0)
  let acc1 = f32x4.splat(0)
  let i: usize = 0
  for (; i < bytes8; i += 32) {
    acc0 = f32x4.add(acc0, f32x4.mul(v128.load(a + i), v128.load(b + i)))
    acc1 = f32x4.add(acc1, f32x4.mul(v128.load(a + i, 16), v128.load(b + i, 16)))
  }
  if (i + 16 <= bytes) {
    acc0 = f32x4.add(acc0, f32x4.mul(v128.load(a + i), v128.load(b + i)))
    i += 16
  }
  let sum = fold(f32x4.add(acc0, acc1))
  for (; i < bytes; i += 4) sum += load<f32>(a + i) * load<f32>(b + i)
  return sum
}

/** y[i] = y[i] * s for n f32 elements */
export function scale(y: usize, s: f32, n: i32): void {
  const bytes = <usize>n << 2
  const bytes4 = <usize>(n & ~3) << 2
  const sv = f32x4.splat(s)
  let i: usize = 0
  for (; i < bytes4; i += 16) v128.store(y + i, f32x4.mul(v128.load(y + i), sv))
  for (; i < bytes; i += 4) store<f32>(y + i, load<f32>(y + i) * s)
}

/** y[i] += a * x[i] for n f32 elements */
export function axpy(y: usize, a: f32, x: usize, n: i32): void {
  const bytes = <usize>n << 2
  const bytes4 = <usize>(n & ~3) << 2
  const av = f32x4.splat(a)
  let i: usize = 0
  for (; i < bytes4; i += 16) v128.store(y + i, f32x4.add(v128.load(y + i), f32x4.mul(av, v128.load(x + i))))
  for (; i < bytes; i += 4) store<f32>(y + i, load<f32>(y + i) + a * load<f32>(x + i))
}
