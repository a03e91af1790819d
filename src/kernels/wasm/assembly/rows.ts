// Moving rows and runs of floats, and token ids.

/** out[r] = x[indices[r]] (rows of length H) for r in [begin, end) */
export function gather_rows(out: usize, x: usize, indices: usize, R: i32, H: i32, begin: i32, end: i32): void {
  const rowBytes = <usize>H << 2
  for (let r = begin; r < end; r++) {
    const src = <usize>load<i32>(indices + (<usize>r << 2))
    memory.copy(out + <usize>r * rowBytes, x + src * rowBytes, rowBytes)
  }
}

/** out[i] = x[i] for n f32 elements */
export function copy(out: usize, x: usize, n: i32): void {
  memory.copy(out, x, <usize>n << 2)
}

/** ids[t] = argmax[from[t]] (from[t] >= 0), drawn[-2 - from[t]] (from[t] <= -2), unchanged (-1) */
export function take_tokens(ids: usize, from: usize, argmax: usize, drawn: usize, T: i32): void {
  for (let t = 0; t < T; t++) {
    const f = load<i32>(from + (<usize>t << 2))
    if (f >= 0) store<i32>(ids + (<usize>t << 2), load<i32>(argmax + (<usize>f << 2)))
    else if (f <= -2) store<i32>(ids + (<usize>t << 2), load<i32>(drawn + (<usize>(-2 - f) << 2)))
  }
}
