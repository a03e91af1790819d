import { writeFileSync } from "node:fs"

/**
 * A minimal safetensors writer for tests, laid out as the reference (Rust) writer does:
 * header JSON padded with spaces to a multiple of 8 bytes, tensors packed in order.
 */

export interface TensorData {
  readonly dtype: string
  readonly shape: readonly number[]
  readonly data: Uint8Array
}

export function encodeSafetensors(
  tensors: Readonly<Record<string, TensorData>>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const header: Record<string, unknown> = {}
  if (metadata) header.__metadata__ = metadata
  let offset = 0
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] }
    offset += t.data.length
  }
  let json = JSON.stringify(header)
  json += " ".repeat((8 - ((8 + json.length) % 8)) % 8)
  const headerBytes = new TextEncoder().encode(json)
  const out = new Uint8Array(8 + headerBytes.length + offset)
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true)
  out.set(headerBytes, 8)
  let at = 8 + headerBytes.length
  for (const t of Object.values(tensors)) {
    out.set(t.data, at)
    at += t.data.length
  }
  return out
}

export function writeSafetensors(
  path: string,
  tensors: Readonly<Record<string, TensorData>>,
  metadata?: Readonly<Record<string, string>>,
): void {
  writeFileSync(path, encodeSafetensors(tensors, metadata))
}

export const f32Tensor = (shape: readonly number[], values: ArrayLike<number>): TensorData => ({
  dtype: "F32",
  shape,
  data: new Uint8Array(Float32Array.from(values).buffer),
})

/** A 16-bit tensor from raw bit patterns (BF16 or F16). */
export const bitsTensor = (dtype: "BF16" | "F16", shape: readonly number[], bits: ArrayLike<number>): TensorData => ({
  dtype,
  shape,
  data: new Uint8Array(Uint16Array.from(bits).buffer),
})

/** float32 -> bfloat16 bits, rounding to nearest even (what torch's .to(bfloat16) does). */
export function bf16Bits(value: number): number {
  const bits = new Uint32Array(Float32Array.of(value).buffer)[0]!
  if ((bits & 0x7fffffff) > 0x7f800000) return (bits >>> 16) | 0x40 // NaN stays NaN
  return (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16
}
