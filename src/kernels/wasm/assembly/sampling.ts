// Turning logits into tokens: greedy argmax, and softmax for sampling.

/** out[m] = argmax_v logits[m,v], first index on ties, for rows m in [begin, end) */
export function argmax(out: usize, logits: usize, M: i32, V: i32, begin: i32, end: i32): void {
  const rowBytes = <usize>V << 2
  const v4 = V & ~3
  for (let m = begin; m < end; m++) {
    const row = logits + <usize>m * rowBytes
    let best = 0
    let bestValue = load<f32>(row)
    let i = 0
    if (v4 >= 4) {
      // each lane keeps its first maximum (strictly greater replaces), then the lanes are
      // merged preferring the smaller index on equal values
      let values = v128.load(row)
      let indices = i32x4(0, 1, 2, 3)
      let lane = indices
      const four = i32x4.splat(4)
      for (i = 4; i < v4; i += 4) {
        lane = i32x4.add(lane, four)
        const v = v128.load(row + (<usize>i << 2))
        const greater = f32x4.gt(v, values)
        values = v128.bitselect(v, values, greater)
        indices = v128.bitselect(lane, indices, greater)
      }
      bestValue = f32x4.extract_lane(values, 0)
      best = i32x4.extract_lane(indices, 0)
      let v = f32x4.extract_lane(values, 1), at = i32x4.extract_lane(indices, 1)
      if (v > bestValue || (v == bestValue && at < best)) { bestValue = v; best = at }
      v = f32x4.extract_lane(values, 2); at = i32x4.extract_lane(indices, 2)
      if (v > bestValue || (v == bestValue && at < best)) { bestValue = v; best = at }
      v = f32x4.extract_lane(values, 3); at = i32x4.extract_lane(indices, 3)
      if (v > bestValue || (v == bestValue && at < best)) { bestValue = v; best = at }
    }
    for (; i < V; i++) {
      const v = load<f32>(row + (<usize>i << 2))
      if (v > bestValue) {
        bestValue = v
        best = i
      }
    }
    store<i32>(out + (<usize>m << 2), best)
  }
}

/** x[m] = softmax(x[m] / temperature) in place, for rows m in [begin, end) */
export function softmax(x: usize, M: i32, V: i32, temperature: f32, begin: i32, end: i32): void {
  const rowBytes = <usize>V << 2
  const bytes4 = <usize>(V & ~3) << 2
  const invT = <f32>1 / temperature
  for (let m = begin; m < end; m++) {
    const row = x + <usize>m * rowBytes
    let maxv = f32x4.splat(-Infinity)
    let i: usize = 0
    for (; i < bytes4; i += 16) maxv = f32x4.max(maxv, v128.load(row + i))
    let top = max(max(f32x4.extract_lane(maxv, 0), f32x4.extract_lane(maxv, 1)), max(f32x4.extract_lane(maxv, 2), f32x4.extract_lane(maxv, 3)))
    for (; i < rowBytes; i += 4) top = max(top, load<f32>(row + i))
    // the sum runs over up to ~10^5 terms: f64 keeps its rounding error negligible
    let sum: f64 = 0
    for (i = 0; i < rowBytes; i += 4) {
      const e = Mathf.exp((load<f32>(row + i) - top) * invT)
      store<f32>(row + i, e)
      sum += e
    }
    const inv = <f32>(<f64>1 / sum)
    const iv = f32x4.splat(inv)
    for (i = 0; i < bytes4; i += 16) v128.store(row + i, f32x4.mul(v128.load(row + i), iv))
    for (; i < rowBytes; i += 4) store<f32>(row + i, load<f32>(row + i) * inv)
  }
}
