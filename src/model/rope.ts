import type { ModelConfig } from "./config.ts"

/**
 * RoPE inverse frequencies, one per rotated pair of a head: the values transformers'
 * modeling_rope_utils puts in `inv_freq`. Both the CPU and the GPU paths start from
 * this table, so the two agree with each other and with transformers.
 *
 * transformers computes in float32 torch ops with Python scalars (which torch casts to
 * float32), so each step below rounds with Math.fround where torch rounds. Two torch
 * idioms matter: `scalar / tensor` is `tensor.reciprocal() * scalar`, and `base **
 * tensor` is a float32 pow. Our pow is double-precision then rounded, i.e. correctly
 * rounded; torch's vectorized float32 pow is within 1 ulp, so an entry can differ from
 * transformers by 1 ulp of float32 (about 6e-8 relative) and no more.
 */
export function inverseFrequencies(config: Pick<ModelConfig, "headDim" | "rope">): Float32Array {
  const dim = config.headDim
  const base = Math.fround(config.rope.theta)
  const inv = new Float32Array(dim / 2)
  for (let i = 0; i < inv.length; i++) {
    // torch.arange(0, dim, 2).float() / dim, then 1.0 / (base ** that)
    const exponent = Math.fround((2 * i) / dim)
    inv[i] = Math.fround(1 / Math.fround(Math.pow(base, exponent)))
  }
  const scaling = config.rope.scaling
  switch (scaling.type) {
    case "none":
      return inv
    case "linear": {
      // Scaling positions by 1/factor is the same as scaling the frequencies.
      const factor = Math.fround(scaling.factor)
      for (let i = 0; i < inv.length; i++) inv[i] = Math.fround(inv[i]! / factor)
      return inv
    }
    case "llama3":
      applyLlama3Scaling(inv, scaling)
      return inv
  }
}

/**
 * Llama 3.1's scaling: wavelengths shorter than original_context / high_freq_factor
 * keep their frequency, those longer than original_context / low_freq_factor are
 * slowed by `factor`, and those in between blend the two linearly in
 * original_context / wavelength.
 */
function applyLlama3Scaling(
  inv: Float32Array,
  s: Extract<ModelConfig["rope"]["scaling"], { type: "llama3" }>,
): void {
  const f = Math.fround
  const factor = f(s.factor)
  const low = f(s.lowFreqFactor)
  const oldContext = f(s.originalMaxPositionEmbeddings)
  const lowFreqWavelen = f(s.originalMaxPositionEmbeddings / s.lowFreqFactor)
  const highFreqWavelen = f(s.originalMaxPositionEmbeddings / s.highFreqFactor)
  const twoPi = f(2 * Math.PI)
  const band = f(s.highFreqFactor - s.lowFreqFactor)
  for (let i = 0; i < inv.length; i++) {
    const freq = inv[i]!
    const wavelen = f(f(1 / freq) * twoPi)
    if (wavelen < highFreqWavelen) continue
    if (wavelen > lowFreqWavelen) {
      inv[i] = f(freq / factor)
      continue
    }
    const smooth = f(f(f(f(1 / wavelen) * oldContext) - low) / band)
    // (1 - smooth) * freq / factor + smooth * freq, in torch's evaluation order
    inv[i] = f(f(f(f(1 - smooth) * freq) / factor) + f(smooth * freq))
  }
}
