import { readFileSync, statSync } from "node:fs"
import { loadError } from "./errors.ts"
import { describeReadFailure } from "./jsonFile.ts"
import { copyAsFloat32, type ElementViews, isLoadableDtype } from "./tensorConvert.ts"

/**
 * A safetensors file: an 8-byte little-endian header length N, N bytes of JSON
 * describing each tensor (dtype, shape, data_offsets relative to the end of the
 * header), then the raw little-endian tensor data. Tensors are read straight out of
 * the file's bytes (memory-mapped under Bun), so opening a 100 GB checkpoint costs
 * nothing until a rank touches the slices it needs.
 */

/** Bytes per element of every dtype the format defines; only some are loadable. */
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
}

export interface TensorEntry {
  readonly name: string
  readonly dtype: string
  readonly shape: readonly number[]
  /** Offset of the first byte of the tensor's data from the start of the file. */
  readonly fileOffset: number
  readonly byteLength: number
}

/** Half-open index range [begin, end). */
export type IndexRange = readonly [begin: number, end: number]

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  // Typed-array views read the file in host byte order; safetensors is little-endian.
  throw new Error("safetensors: big-endian hosts are not supported")
}

export class SafetensorsFile {
  constructor(
    readonly path: string,
    readonly metadata: Readonly<Record<string, string>>,
    readonly tensors: ReadonlyMap<string, TensorEntry>,
    /** The whole file; kept referenced so the mapping lives as long as this object. */
    private readonly bytes: Uint8Array,
  ) {}

  entry(name: string): TensorEntry {
    const entry = this.tensors.get(name)
    if (entry === undefined) throw loadError(this.path, `no tensor named "${name}"`)
    return entry
  }

  /** The tensor's raw bytes, a view over the file (no copy). */
  rawBytes(name: string): Uint8Array {
    const { fileOffset, byteLength } = this.entry(name)
    return this.bytes.subarray(fileOffset, fileOffset + byteLength)
  }

  /**
   * The tensor's elements as a typed view over the file (no copy): Uint16Array of
   * bit patterns for BF16/F16, Float32Array for F32.
   */
  elements(name: string): Uint16Array | Float32Array {
    const views = this.elementViews(this.entry(name))
    return views.dtype === "F32" ? views.f32 : views.bits
  }

  /**
   * Converts the tensor, or a block of it, into `dst` as float32. `rows` selects a
   * range of the first dimension (a column-parallel shard); `cols` a range of the
   * second dimension of a 2-D tensor (a row-parallel shard). `dst.length` must equal
   * the number of selected elements; nothing else is allocated.
   */
  readInto(name: string, dst: Float32Array, rows?: IndexRange, cols?: IndexRange): void {
    const entry = this.entry(name)
    const views = this.elementViews(entry)
    const { r0, r1, c0, c1, rowLength } = selectBlock(this.path, name, entry.shape, rows, cols)
    const where = `tensor "${name}" [${entry.shape.join(", ")}]`
    const width = c1 - c0
    const count = (r1 - r0) * width
    if (dst.length !== count) {
      throw loadError(
        this.path,
        `${where}: destination holds ${dst.length} floats but rows [${r0}, ${r1}) x columns [${c0}, ${c1}) are ${count}`,
      )
    }
    if (width === rowLength) {
      copyAsFloat32(views, r0 * rowLength, dst, 0, count)
      return
    }
    for (let r = r0; r < r1; r++) copyAsFloat32(views, r * rowLength + c0, dst, (r - r0) * width, width)
  }

  private elementViews(entry: TensorEntry): ElementViews {
    if (!isLoadableDtype(entry.dtype)) {
      throw loadError(this.path, `tensor "${entry.name}" has dtype ${entry.dtype}; only BF16, F16 and F32 can be loaded`)
    }
    const width = DTYPE_BYTES[entry.dtype]!
    const offset = this.bytes.byteOffset + entry.fileOffset
    if (offset % width !== 0) {
      // Writers sort tensors by alignment and pad the header to 8 bytes; a file
      // that breaks this cannot be viewed in place.
      throw loadError(this.path, `tensor "${entry.name}" starts at byte ${entry.fileOffset}, not aligned to ${width} bytes`)
    }
    const length = entry.byteLength / width
    const buffer = this.bytes.buffer
    if (entry.dtype === "F32") return { dtype: "F32", f32: new Float32Array(buffer, offset, length) }
    const bits = new Uint16Array(buffer, offset, length)
    if (entry.dtype === "BF16") return { dtype: "BF16", bits }
    const half = typeof Float16Array === "function" ? new Float16Array(buffer, offset, length) : null
    return { dtype: "F16", bits, half }
  }
}

/**
 * Rows `[r0, r1)` (all when `rows` is absent) and columns `[c0, c1)` of a 2-D tensor (all of a
 * row when `cols` is absent) of a tensor of `shape`, checked, with the row length: the block a
 * shard reads. Errors name the file and the tensor.
 */
export function selectBlock(
  path: string,
  name: string,
  shape: readonly number[],
  rows?: IndexRange,
  cols?: IndexRange,
): { r0: number; r1: number; c0: number; c1: number; rowLength: number } {
  const where = `tensor "${name}" [${shape.join(", ")}]`
  const numRows = shape.length === 0 ? 1 : shape[0]!
  const rowLength = shape.slice(1).reduce((a, b) => a * b, 1)
  const [r0, r1] = rows ?? [0, numRows]
  checkRange(path, where, "row", r0, r1, numRows)
  if (cols !== undefined && shape.length !== 2) throw loadError(path, `${where}: a column range needs a 2-D tensor`)
  const [c0, c1] = cols ?? [0, rowLength]
  checkRange(path, where, "column", c0, c1, rowLength)
  return { r0, r1, c0, c1, rowLength }
}

function checkRange(path: string, where: string, axis: string, begin: number, end: number, size: number): void {
  if (!Number.isInteger(begin) || !Number.isInteger(end) || begin < 0 || begin > end || end > size) {
    throw loadError(path, `${where}: ${axis} range [${begin}, ${end}) is not within [0, ${size})`)
  }
}

/** Maps the file (Bun) or reads it (elsewhere) and parses its header. */
export function openSafetensors(path: string): SafetensorsFile {
  let size: number
  try {
    size = statSync(path).size
  } catch (e) {
    throw loadError(path, describeReadFailure(e))
  }
  // mmap rejects empty files; the header check below gives the real reason.
  return parseSafetensors(path, size === 0 ? new Uint8Array(0) : mapFile(path))
}

function mapFile(path: string): Uint8Array {
  if (typeof Bun !== "undefined") {
    try {
      // MAP_PRIVATE: a stray write into a weight view must never reach the file.
      // The file must not be truncated while mapped (that would fault the process).
      return Bun.mmap(path, { shared: false })
    } catch {
      // e.g. a filesystem without mmap support; reading it is slower but correct.
    }
  }
  const bytes = readFileSync(path)
  // Typed views need the data aligned; a pooled Buffer may start mid-slab.
  return bytes.byteOffset % 8 === 0 ? bytes : new Uint8Array(bytes)
}

/** Parses and validates the header of a safetensors image held in `bytes`. */
export function parseSafetensors(path: string, bytes: Uint8Array): SafetensorsFile {
  const fail = (problem: string) => loadError(path, `invalid safetensors file: ${problem}`)
  if (bytes.length < 8) throw fail(`file is ${bytes.length} bytes, too short for the 8-byte header length`)
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true)
  if (headerLength > BigInt(bytes.length - 8)) {
    throw fail(`header length ${headerLength} runs past the end of the file (${bytes.length} bytes): truncated or not safetensors`)
  }
  const dataStart = 8 + Number(headerLength)
  const dataLength = bytes.length - dataStart
  let header: unknown
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, dataStart)))
  } catch (e) {
    throw fail(`header is not valid JSON (${e instanceof Error ? e.message : String(e)})`)
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) throw fail("header is not a JSON object")

  let metadata: Record<string, string> = {}
  const entries: TensorEntry[] = []
  for (const [name, value] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = parseMetadata(value, fail)
      continue
    }
    const entry = parseEntry(name, value, dataLength, fail)
    entries.push({ ...entry, fileOffset: dataStart + entry.fileOffset })
  }
  checkNoOverlap(entries, fail)
  return new SafetensorsFile(path, metadata, new Map(entries.map((e) => [e.name, e])), bytes)
}

type Fail = (problem: string) => Error

function parseMetadata(value: unknown, fail: Fail): Record<string, string> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw fail("__metadata__ is not an object")
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== "string") throw fail(`__metadata__ value "${key}" is not a string`)
  }
  return value as Record<string, string>
}

/** Validates one tensor's header entry; `fileOffset` is still relative to the data section. */
function parseEntry(name: string, value: unknown, dataLength: number, fail: Fail): TensorEntry {
  const bad = (problem: string) => fail(`tensor "${name}": ${problem}`)
  if (value === null || typeof value !== "object") throw bad("entry is not an object")
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>
  if (typeof dtype !== "string" || DTYPE_BYTES[dtype] === undefined) throw bad(`unknown dtype ${JSON.stringify(dtype)}`)
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw bad(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`)
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    throw bad(`data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`)
  }
  const [begin, end] = offsets as [number, number]
  if (begin > end || end > dataLength) {
    throw bad(`data_offsets [${begin}, ${end}] fall outside the ${dataLength} data bytes: truncated file or bad header`)
  }
  const expected = (shape as number[]).reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype]!
  if (end - begin !== expected) {
    throw bad(`data_offsets [${begin}, ${end}] span ${end - begin} bytes but ${dtype} [${shape.join(", ")}] needs ${expected}`)
  }
  return { name, dtype, shape: shape as number[], fileOffset: begin, byteLength: end - begin }
}

function checkNoOverlap(entries: readonly TensorEntry[], fail: Fail): void {
  const sorted = entries.filter((e) => e.byteLength > 0).sort((a, b) => a.fileOffset - b.fileOffset)
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!
    const cur = sorted[i]!
    if (cur.fileOffset < prev.fileOffset + prev.byteLength) {
      throw fail(`tensors "${prev.name}" and "${cur.name}" overlap`)
    }
  }
}
