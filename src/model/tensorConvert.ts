/**
 * Widening BF16/F16/F32 weights to float32, in place into a caller's buffer. Copies
 * go through integer views where they can, so every value, NaN payloads included,
 * arrives bit-exact.
 */

export type LoadableDtype = "BF16" | "F16" | "F32"

export const isLoadableDtype = (dtype: string): dtype is LoadableDtype =>
  dtype === "BF16" || dtype === "F16" || dtype === "F32"

/** Typed views over one tensor's bytes, made once per read so per-row copies allocate nothing. */
export type ElementViews =
  | { readonly dtype: "BF16"; readonly bits: Uint16Array }
  | { readonly dtype: "F16"; readonly bits: Uint16Array; readonly half: Float16Array | null }
  | { readonly dtype: "F32"; readonly f32: Float32Array }

/** Copies `count` elements starting at `src` index `from` into `dst` starting at `to`. */
export function copyAsFloat32(src: ElementViews, from: number, dst: Float32Array, to: number, count: number): void {
  switch (src.dtype) {
    case "F32":
      dst.set(src.f32.subarray(from, from + count), to)
      return
    case "BF16": {
      // bf16 is the top half of an f32: shift the bits up, no arithmetic.
      const out = new Uint32Array(dst.buffer, dst.byteOffset + to * 4, count)
      const bits = src.bits
      for (let i = 0; i < count; i++) out[i] = bits[from + i]! << 16
      return
    }
    case "F16": {
      if (src.half !== null) {
        // Native f16 -> f32 conversion; exact, since every f16 is representable in f32.
        dst.set(src.half.subarray(from, from + count), to)
        return
      }
      const out = new Uint32Array(dst.buffer, dst.byteOffset + to * 4, count)
      const bits = src.bits
      for (let i = 0; i < count; i++) out[i] = halfBitsToFloatBits(bits[from + i]!)
      return
    }
  }
}

/** IEEE binary16 bit pattern -> binary32 bit pattern, exact for every input. */
export function halfBitsToFloatBits(h: number): number {
  const sign = (h & 0x8000) << 16
  const exponent = (h >> 10) & 0x1f
  let mantissa = h & 0x3ff
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0 // inf, NaN (payload kept)
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0 // rebias 15 -> 127
  if (mantissa === 0) return sign >>> 0
  // Subnormal f16 (mantissa * 2^-24) is a normal f32: shift the leading one into the
  // implicit bit, lowering the exponent once per shift.
  let e = 113
  while ((mantissa & 0x400) === 0) {
    mantissa <<= 1
    e--
  }
  return (sign | (e << 23) | ((mantissa & 0x3ff) << 13)) >>> 0
}
