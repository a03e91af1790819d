// The gated MLP's activation: silu(gate) * up, with gate and up fused in one [T, 2I] row.

export function silu_mul(out: usize, gateUp: usize, T: i32, I: i32, begin: i32, end: i32): void {
  const upOffset = <usize>I << 2
  for (let t = begin; t < end; t++) {
    const g = gateUp + ((<usize>t * I) << 3)
    const o = out + ((<usize>t * I) << 2)
    for (let i: usize = 0; i < upOffset; i += 4) {
      const x = load<f32>(g + i)
      // silu(x) = x * sigmoid(x); for x -> -inf, exp overflows to inf and the quotient is -0
      store<f32>(o + i, (x / (<f32>1 + Mathf.exp(-x))) * load<f32>(g + upOffset + i))
    }
  }
}
