// Moving rows and runs of floats.

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
