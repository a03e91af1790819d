/**
 * Every catalog kernel on the CUDA provider against the WASM provider, on random inputs of odd
 * sizes: the same positional call on both, as the stages make it.
 *
 * Inputs are rounded to bf16 on the host first, so both providers start from the same values;
 * the WASM kernels then compute in f32 and keep f32, the CUDA kernels compute in f32 and store
 * bf16. Tolerances, per output element, against the WASM value c:
 *   - copies, lookups, kv_write and argmax: exact (argmax's ties included: bf16 logits tie
 *     often, and both take the first index);
 *   - a composite kernel, also against its own sequence of kernels on the GPU: exact (a fused
 *     kernel must give what the sequence gives), except where the fused kernel rounds elsewhere
 *     (a norm made by the projection after it). Against the CPU its rms term is 2^-5, not 1e-3,
 *     and its normwise error at most 2^-7: the GPU rounds the intermediates (the normed input,
 *     the projection) to bf16 where the CPU keeps f32, and rope's turn or the activation can
 *     make a small output of large intermediates, so that rounding shows in proportion to the
 *     intermediates' size; and a cache's rms is mostly that of the slots the step leaves alone
 *     (smaller than the projection's outputs). The normwise bound (about 2x the errors seen on
 *     H200) is what catches a wrong row or a missed add;
 *   - everything else: |gpu - c| <= 2^-7 |c| + 1e-3 rms(c). One bf16 rounding of the stored
 *     output is 2^-9 relative, and 2^-7 leaves a factor 4 over it (add_rmsnorm's residual is
 *     f32 on both). The 1e-3 rms term covers elements near zero,
 *     where the two providers' different f32 summation orders (cuBLAS tiles, warp reductions)
 *     show against a tiny value.
 *   - and every output is finite: outputs start as NaN on the GPU, so an element a kernel
 *     forgot to write fails.
 * Also reported: the normwise error ||gpu - c|| / ||c||.
 */
import { catalog, type DType, type KernelName } from "../src/kernels/catalog.ts"
import { composites } from "../src/kernels/composite.ts"
import { bytesOf, type KernelProvider } from "../src/kernels/provider.ts"
import { attentionQueries } from "./lib/attentionQueries.ts"

type Values = Float32Array | Int32Array

interface Buffer {
  readonly data: Values
  readonly dtype: DType
  /** start as NaN: the kernel must write every element */
  readonly poison?: boolean
}

export interface KernelCase {
  readonly kernel: KernelName
  readonly label: string
  readonly buffers: Record<string, Buffer>
  /** the kernel's arguments; `at(buffer, element)` is a pointer into a buffer */
  readonly args: (at: (buffer: string, element?: number) => number) => number[]
  /** buffers the kernel writes, compared after the call */
  readonly outputs: ReadonlyArray<string>
  readonly exact?: boolean
  /**
   * a composite kernel also run as its sequence on the same provider: the fused kernel must
   * give the sequence's outputs bit for bit
   */
  readonly againstSequence?: boolean
  /** the rms term of the bound (default 1e-3) */
  readonly rmsTolerance?: number
  /**
   * against its sequence, the bound's rms term where the fused kernel may round elsewhere than
   * the sequence (a norm made as the projection's input is staged); unset: bit for bit
   */
  readonly sequenceRmsTolerance?: number
  /** the most normwise error that passes (default: unbounded; the elementwise bound decides) */
  readonly normwiseTolerance?: number
}

export interface KernelResult {
  readonly kernel: KernelName
  readonly case: string
  readonly output: string
  readonly elements: number
  /** worst |gpu - cpu| / bound over the elements (<= 1 passes); 0 for exact matches */
  readonly worstOfBound: number
  readonly normwise: number
  readonly maxAbs: number
  readonly mismatches: number
  readonly pass: boolean
  readonly note?: string
}

// ---- inputs ----

/** deterministic uniform values in [lo, hi) (mulberry32) */
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let r = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r
  return ((r ^ (r >>> 14)) >>> 0) / 2 ** 32
}

/** x rounded to bf16, to nearest even, in place */
export const roundBf16 = (x: Float32Array): Float32Array => {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length)
  for (let i = 0; i < bits.length; i++) bits[i] = ((bits[i] + 0x7fff + ((bits[i] >>> 16) & 1)) >>> 0) & 0xffff0000
  return x
}

let nextSeed = 1
const floats = (n: number, lo = -1, hi = 1): Buffer => {
  const next = random(nextSeed++)
  const data = new Float32Array(n)
  for (let i = 0; i < n; i++) data[i] = lo + (hi - lo) * next()
  return { data: roundBf16(data), dtype: "float" }
}
const outputOf = (n: number): Buffer => ({ data: new Float32Array(n), dtype: "float", poison: true })
/** f32 on both providers (the residual stream): bf16 values, so both start from the same ones */
const f32s = (n: number, lo = -1, hi = 1): Buffer => ({ ...floats(n, lo, hi), dtype: "f32" })
/** an f32 output (a residual stream written elsewhere) */
const residualOf = (n: number): Buffer => ({ data: new Float32Array(n), dtype: "f32", poison: true })
const ints = (values: ArrayLike<number>): Buffer => ({ data: Int32Array.from(values), dtype: "i32" })
const randomInts = (n: number, lo: number, hi: number): Buffer => {
  const next = random(nextSeed++)
  return ints(Array.from({ length: n }, () => lo + Math.floor((hi - lo) * next())))
}

// ---- cases ----

const rowCases = ([T, H]: [number, number]): KernelCase[] => [
  {
    kernel: "rmsnorm",
    label: `T=${T} H=${H}`,
    buffers: { out: outputOf(T * H), x: floats(T * H, -3, 3), w: floats(H, 0.5, 1.5) },
    args: (at) => [at("out"), at("x"), at("w"), T, H, 1e-6],
    outputs: ["out"]
  },
  {
    kernel: "add_rmsnorm",
    label: `T=${T} H=${H}, residual in place`,
    buffers: { out: outputOf(T * H), residual: f32s(T * H, -3, 3), x: floats(T * H, -3, 3), w: floats(H, 0.5, 1.5) },
    args: (at) => [at("out"), at("residual"), at("residual"), at("x"), at("w"), T, H, 1e-6, 1],
    outputs: ["out", "residual"]
  },
  {
    kernel: "add_rmsnorm",
    label: `T=${T} H=${H}, residual to another buffer`,
    buffers: {
      out: outputOf(T * H), residualOut: residualOf(T * H), residualIn: f32s(T * H, -3, 3), x: floats(T * H, -3, 3), w: floats(H, 0.5, 1.5)
    },
    args: (at) => [at("out"), at("residualOut"), at("residualIn"), at("x"), at("w"), T, H, 1e-6, 1],
    outputs: ["out", "residualOut", "residualIn"]
  },
  {
    kernel: "add_rmsnorm",
    label: `T=${T} H=${H}, out aliases x, residual started`,
    buffers: { residual: f32s(T * H, -3, 3), x: floats(T * H, -3, 3), w: floats(H, 0.5, 1.5) },
    args: (at) => [at("x"), at("residual"), at("residual"), at("x"), at("w"), T, H, 1e-5, 0],
    outputs: ["x", "residual"]
  },
  {
    kernel: "embedding",
    label: `T=${T} H=${H}, vocab shard [100, 300) of 400`,
    buffers: { out: outputOf(T * H), ids: randomInts(T, 0, 400), table: floats(200 * H) },
    args: (at) => [at("out"), at("ids"), at("table"), T, H, 100, 300],
    outputs: ["out"],
    exact: true
  },
  {
    kernel: "take_tokens",
    label: "T=300: ids from the step before's argmax, its draw, or kept",
    buffers: {
      ids: randomInts(300, 0, 1000),
      from: ints(Array.from({ length: 300 }, (_, t) => (t % 3 === 0 ? -1 : t % 3 === 1 ? (t * 7) % 64 : -2 - ((t * 5) % 64)))),
      argmax: randomInts(64, 1000, 2000),
      drawn: randomInts(64, 2000, 3000)
    },
    args: (at) => [at("ids"), at("from"), at("argmax"), at("drawn"), 300],
    outputs: ["ids"],
    exact: true
  },
  {
    kernel: "gather_rows",
    label: `R=3 of T=${T}, H=${H}`,
    buffers: { out: outputOf(3 * H), x: floats(T * H), indices: ints([T - 1, 0, Math.floor(T / 2)]) },
    args: (at) => [at("out"), at("x"), at("indices"), 3, H],
    outputs: ["out"],
    exact: true
  },
  {
    kernel: "add_bias",
    label: `M=${T} N=${H}`,
    buffers: { x: floats(T * H), bias: floats(H) },
    args: (at) => [at("x"), at("bias"), T, H],
    outputs: ["x"]
  },
  {
    kernel: "silu_mul",
    label: `T=${T} I=${H}`,
    buffers: { out: outputOf(T * H), gateUp: floats(T * 2 * H, -6, 6) },
    args: (at) => [at("out"), at("gateUp"), T, H],
    outputs: ["out"]
  }
]

const matmulCase = ([M, N, K]: [number, number, number]): KernelCase => ({
  kernel: "matmul",
  label: `M=${M} N=${N} K=${K}`,
  buffers: { out: outputOf(M * N), x: floats(M * K), w: floats(N * K, -0.1, 0.1) },
  args: (at) => [at("out"), at("x"), at("w"), M, N, K],
  outputs: ["out"]
})

/** a composite's bounds against the CPU (see the top of this file) */
const compositeTolerance = { rmsTolerance: 2 ** -5, normwiseTolerance: 2 ** -7 } as const

/** a fused qkv buffer [T, (Hq + 2 Hkv) D], as the attention layer lays it out */
const qkvOf = (T: number, Hq: number, Hkv: number, D: number) => ({ stride: (Hq + 2 * Hkv) * D, buffer: floats(T * (Hq + 2 * Hkv) * D, -2, 2) })

const headNormCase = ([T, heads, D]: [number, number, number]): KernelCase => {
  const { stride, buffer } = qkvOf(T, heads, 2, D)
  return {
    kernel: "head_rmsnorm",
    label: `T=${T} heads=${heads} D=${D} (q of a fused row)`,
    buffers: { qkv: buffer, w: floats(D, 0.5, 1.5) },
    args: (at) => [at("qkv"), at("w"), T, heads, D, stride, 1e-6],
    outputs: ["qkv"]
  }
}

const ropeCase = ([T, Hq, Hkv, D, maxPosition]: [number, number, number, number, number]): KernelCase => {
  const { stride, buffer } = qkvOf(T, Hq, Hkv, D)
  const invFreq = Float32Array.from({ length: D / 2 }, (_, i) => 1 / Math.pow(1e6, (2 * i) / D))
  return {
    kernel: "rope",
    label: `T=${T} Hq=${Hq} Hkv=${Hkv} D=${D}, positions < ${maxPosition}`,
    buffers: { qkv: buffer, positions: randomInts(T, 0, maxPosition), invFreq: { data: invFreq, dtype: "f32" } },
    args: (at) => [at("qkv"), at("qkv", Hq * D), at("positions"), at("invFreq"), T, Hq, Hkv, D, stride, stride],
    outputs: ["qkv"]
  }
}

/**
 * A mixed batch over a shuffled paged cache: sequences given as [first position, tokens].
 * Prefills long enough for full 16-token tiles, ragged ends, decodes and a chunked prefill
 * whose earlier keys are already cached; the cache is random everywhere (history included).
 */
const attentionCase = ([Hq, Hkv, D]: [number, number, number], seqs: ReadonlyArray<[number, number]>): KernelCase => {
  const blockSize = 16
  const maxBlocks = Math.max(...seqs.map(([start, n]) => Math.ceil((start + n) / blockSize)))
  const numBlocks = seqs.length * maxBlocks + 3
  const order = randomInts(numBlocks, 0, 1 << 30).data
  const blocks = Array.from({ length: numBlocks }, (_, b) => b).sort((a, b) => order[a] - order[b])
  const { queryToSeq, positions } = attentionQueries(seqs)
  const T = positions.length
  const { stride, buffer } = qkvOf(T, Hq, Hkv, D)
  const cache = numBlocks * blockSize * Hkv * D
  return {
    kernel: "paged_attention",
    label: `Hq=${Hq} Hkv=${Hkv} D=${D}, seqs ${seqs.map(([s, n]) => `${n}@${s}`).join(" ")} (T=${T})`,
    buffers: {
      out: outputOf(T * Hq * D),
      qkv: buffer,
      kCache: floats(cache, -2, 2),
      vCache: floats(cache, -2, 2),
      queryToSeq: ints(queryToSeq),
      positions: ints(positions),
      blockTables: ints(blocks.slice(0, seqs.length * maxBlocks))
    },
    args: (at) => [
      at("out"), at("qkv"), at("kCache"), at("vCache"), at("queryToSeq"), at("positions"), at("blockTables"),
      T, Hq, Hkv, D, stride, maxBlocks, blockSize, 1 / Math.sqrt(D), Math.max(...seqs.map(([, n]) => n))
    ],
    outputs: ["out"]
  }
}

const kvWriteCase = ([T, Hq, Hkv, D]: [number, number, number, number]): KernelCase => {
  const { stride, buffer } = qkvOf(T, Hq, Hkv, D)
  const numSlots = 4 * T
  const slots = randomInts(T, 0, numSlots).data.map((s, t) => (t % 5 === 4 ? -1 : t * 4 + (s % 4)))
  return {
    kernel: "kv_write",
    label: `T=${T} Hkv=${Hkv} D=${D}, every 5th token padding`,
    buffers: { kCache: floats(numSlots * Hkv * D), vCache: floats(numSlots * Hkv * D), qkv: buffer, slots: ints(slots) },
    args: (at) => [at("kCache"), at("vCache"), at("qkv", Hq * D), at("qkv", (Hq + Hkv) * D), at("slots"), T, Hkv, D, stride, stride],
    outputs: ["kCache", "vCache"],
    exact: true
  }
}

/** what rope and the cache write read besides q, k and v: a cache of 4 slots a token, every 5th token padding */
const ropeCacheInputs = (T: number, Hkv: number, D: number): Record<string, Buffer> => {
  const numSlots = 4 * T
  const slots = randomInts(T, 0, numSlots).data.map((s, t) => (t % 5 === 4 ? -1 : t * 4 + (s % 4)))
  const invFreq = Float32Array.from({ length: D / 2 }, (_, i) => 1 / Math.pow(5e5, (2 * i) / D))
  return {
    kCache: floats(numSlots * Hkv * D),
    vCache: floats(numSlots * Hkv * D),
    positions: randomInts(T, 0, 100_000),
    invFreq: { data: invFreq, dtype: "f32" },
    slots: ints(slots)
  }
}

const ropeKvWriteCase = ([T, Hq, Hkv, D]: [number, number, number, number]): KernelCase => {
  const { stride, buffer } = qkvOf(T, Hq, Hkv, D)
  return {
    kernel: "rope_kv_write",
    label: `T=${T} Hq=${Hq} Hkv=${Hkv} D=${D}, every 5th token padding`,
    buffers: { qkv: buffer, ...ropeCacheInputs(T, Hkv, D) },
    args: (at) => [
      at("qkv"), at("qkv", Hq * D), at("kCache"), at("vCache"), at("qkv", (Hq + Hkv) * D), at("positions"), at("invFreq"), at("slots"),
      T, Hq, Hkv, D, stride, stride, stride
    ],
    outputs: ["qkv", "kCache", "vCache"]
  }
}

/** the qkv projection with rope and the cache write (the decode layer's first kernel after the norm) */
const qkvRopeCase = ([T, K, Hq, Hkv, D]: [number, number, number, number, number]): KernelCase => {
  const width = (Hq + 2 * Hkv) * D
  return {
    kernel: "qkv_rope_kv_write",
    label: `T=${T} K=${K} Hq=${Hq} Hkv=${Hkv} D=${D}${T >= 5 ? ", every 5th token padding" : ""}`,
    buffers: { qkv: outputOf(T * width), x: floats(T * K), w: floats(width * K, -0.1, 0.1), ...ropeCacheInputs(T, Hkv, D) },
    args: (at) => [at("qkv"), at("x"), at("w"), at("kCache"), at("vCache"), at("positions"), at("invFreq"), at("slots"), T, K, Hq, Hkv, D],
    outputs: ["qkv", "kCache", "vCache"],
    againstSequence: true,
    ...compositeTolerance
  }
}

/** the gated MLP's input projection with its activation; gateUp is scratch, not compared */
const gateUpSiluCase = ([T, I, K]: [number, number, number]): KernelCase => ({
  kernel: "gate_up_silu",
  label: `T=${T} I=${I} K=${K}`,
  buffers: { out: outputOf(T * I), gateUp: outputOf(T * 2 * I), x: floats(T * K, -2, 2), w: floats(2 * I * K, -0.1, 0.1) },
  args: (at) => [at("out"), at("gateUp"), at("x"), at("w"), T, I, K],
  outputs: ["out"],
  againstSequence: true,
  ...compositeTolerance
})

/**
 * The pre-norm layers' first kernels: add_rmsnorm, then the qkv projection with rope and the cache
 * write, or then gate_up_silu. The residual goes to another buffer (where the GPU fuses) or stays
 * in place (its sequence there too); normed and gateUp are scratch, not compared. Against its
 * sequence on the GPU the fused kernel scales the sums by 1 / rms instead of rounding the normed
 * input: one bf16 rounding elsewhere, about 2^-9 of each input, so the rms term of 2^-7 holds there too.
 */
const normedInputs = (T: number, K: number, inPlace: boolean) => ({
  residualIn: f32s(T * K, -3, 3),
  ...(inPlace ? {} : { residualOut: residualOf(T * K) }),
  x: floats(T * K, -3, 3),
  normWeight: floats(K, 0.5, 1.5),
  normed: outputOf(T * K)
})
const normedArgs = (at: (buffer: string) => number, inPlace: boolean) => [
  at("normed"), at(inPlace ? "residualIn" : "residualOut"), at("residualIn"), at("x"), at("normWeight")
]
const normLabel = (inPlace: boolean, accumulate: number) => `${inPlace ? "residual in place" : "residual to another buffer"}${accumulate ? "" : ", residual started"}`

const normQkvRopeCase = ([T, K, Hq, Hkv, D, inPlace, accumulate]: [number, number, number, number, number, boolean, number]): KernelCase => {
  const width = (Hq + 2 * Hkv) * D
  return {
    kernel: "add_rmsnorm_qkv_rope_kv_write",
    label: `T=${T} K=${K} Hq=${Hq} Hkv=${Hkv} D=${D}, ${normLabel(inPlace, accumulate)}`,
    buffers: { qkv: outputOf(T * width), ...normedInputs(T, K, inPlace), w: floats(width * K, -0.1, 0.1), ...ropeCacheInputs(T, Hkv, D) },
    args: (at) => [
      at("qkv"), ...normedArgs(at, inPlace), at("w"), at("kCache"), at("vCache"), at("positions"), at("invFreq"), at("slots"),
      1e-5, accumulate, T, K, Hq, Hkv, D
    ],
    outputs: ["qkv", "kCache", "vCache", inPlace ? "residualIn" : "residualOut"],
    againstSequence: true,
    ...compositeTolerance,
    sequenceRmsTolerance: compositeTolerance.rmsTolerance
  }
}

const normGateUpCase = ([T, I, K, inPlace, accumulate]: [number, number, number, boolean, number]): KernelCase => ({
  kernel: "add_rmsnorm_gate_up_silu",
  label: `T=${T} I=${I} K=${K}, ${normLabel(inPlace, accumulate)}`,
  buffers: { out: outputOf(T * I), gateUp: outputOf(T * 2 * I), ...normedInputs(T, K, inPlace), w: floats(2 * I * K, -0.1, 0.1) },
  args: (at) => [at("out"), at("gateUp"), ...normedArgs(at, inPlace), at("w"), 1e-5, accumulate, T, I, K],
  outputs: ["out", inPlace ? "residualIn" : "residualOut"],
  againstSequence: true,
  ...compositeTolerance,
  sequenceRmsTolerance: compositeTolerance.rmsTolerance
})

export const kernelCases = (): KernelCase[] => [
  ...([[1, 64], [7, 769], [83, 4096]] as [number, number][]).flatMap(rowCases),
  ...([[1, 769, 64], [7, 1024, 1536], [83, 5, 769], [4, 32000, 512], [256, 4096, 1024]] as [number, number, number][]).map(matmulCase),
  ...([[7, 6, 128], [83, 4, 32], [5, 3, 256]] as [number, number, number][]).map(headNormCase),
  ...([[7, 4, 2, 32, 100], [83, 32, 8, 128, 100_000], [5, 2, 1, 80, 4096]] as [number, number, number, number, number][]).map(ropeCase),
  ...([[37, 4, 2, 32], [9, 32, 8, 128]] as [number, number, number, number][]).map(kvWriteCase),
  ...([[37, 4, 2, 32], [9, 32, 8, 128], [1, 32, 8, 128]] as [number, number, number, number][]).map(ropeKvWriteCase),
  // the GPU fuses up to 8 rows where D % 16 == 0 and K % 8 == 0; the rest is its sequence there too
  ...([[1, 4096, 32, 8, 128], [5, 4096, 32, 8, 128], [8, 512, 4, 2, 32], [3, 1536, 12, 2, 64], [9, 1024, 8, 2, 128], [2, 769, 4, 2, 64],
    [4, 512, 4, 2, 80]] as [number, number, number, number, number][]).map(qkvRopeCase),
  ...([[1, 2048, 4096], [6, 1000, 512], [8, 128, 64], [12, 256, 512], [2, 100, 769], [3, 36, 512]] as [number, number, number][]).map(gateUpSiluCase),
  // fused where the residual goes to another buffer, up to 8 rows, K % 8 == 0 (and qkv's conditions)
  ...([[1, 4096, 32, 8, 128, false, 1], [1, 4096, 32, 8, 128, false, 0], [5, 4096, 32, 8, 128, false, 1], [8, 512, 4, 2, 32, false, 1],
    [3, 1536, 12, 2, 64, true, 1], [9, 1024, 8, 2, 128, false, 1], [2, 776, 4, 2, 64, false, 1]] as
    [number, number, number, number, number, boolean, number][]).map(normQkvRopeCase),
  ...([[1, 2048, 4096, false, 1], [6, 1000, 512, false, 0], [8, 128, 64, false, 1], [12, 256, 512, false, 1], [2, 100, 768, true, 1],
    [3, 36, 520, false, 1]] as [number, number, number, boolean, number][]).map(normGateUpCase),
  ...([[4, 2, 32], [4, 1, 16], [6, 2, 20], [32, 8, 128], [24, 1, 80], [4, 4, 256], [2, 2, 96]] as [number, number, number][]).map((heads) =>
    attentionCase(heads, [[0, 37], [70, 1], [50, 20], [0, 16], [200, 1]])
  ),
  attentionCase([8, 2, 128], [[0, 300], [0, 1], [1000, 1], [33, 17]]),
  // decodes only (maxQueryLen 1: no prefill launch), 17 of them: more than one prefill tile of tokens
  attentionCase([32, 8, 128], Array.from({ length: 17 }, (_, i): [number, number] => [i * 37, 1])),
  {
    kernel: "argmax",
    label: "M=7 V=769",
    buffers: { out: ints(new Array(7).fill(-1)), logits: floats(7 * 769, -4, 4) },
    args: (at) => [at("out"), at("logits"), 7, 769],
    outputs: ["out"],
    exact: true
  },
  {
    kernel: "argmax",
    label: "M=3 V=151936 (bf16 logits: many ties)",
    buffers: { out: ints([-1, -1, -1]), logits: floats(3 * 151936, -4, 4) },
    args: (at) => [at("out"), at("logits"), 3, 151936],
    outputs: ["out"],
    exact: true
  },
  {
    kernel: "softmax",
    label: "M=7 V=769 temperature 0.7",
    buffers: { x: floats(7 * 769, -8, 8) },
    args: (at) => [at("x"), 7, 769, 0.7],
    outputs: ["x"]
  },
  {
    kernel: "softmax",
    label: "M=2 V=32000 temperature 1",
    buffers: { x: floats(2 * 32000, -8, 8) },
    args: (at) => [at("x"), 2, 32000, 1],
    outputs: ["x"]
  },
  {
    kernel: "copy",
    label: "n=12345",
    buffers: { out: outputOf(12345), x: floats(12345) },
    args: (at) => [at("out"), at("x"), 12345],
    outputs: ["out"],
    exact: true
  }
]

// ---- running and comparing ----

/**
 * runs one case on a provider (a composite kernel as its sequence of the provider's kernels,
 * with `asSequence`); returns its output buffers as read back
 */
export const runCase = (provider: KernelProvider, c: KernelCase, asSequence = false): Values[] => {
  const { memory } = provider
  const elementBytes = (b: Buffer) => bytesOf(memory, b.dtype, 1)
  const pointers = new Map<string, number>()
  try {
    for (const [name, b] of Object.entries(c.buffers)) {
      const ptr = memory.alloc(bytesOf(memory, b.dtype, b.data.length))
      pointers.set(name, ptr)
      memory.write(ptr, b.poison ? new Float32Array(b.data.length).fill(Number.NaN) : b.data, b.dtype)
    }
    const at = (name: string, element = 0) => pointers.get(name)! + element * elementBytes(c.buffers[name])
    const kernels = asSequence ? { ...provider.kernels, ...composites(provider.kernels, memory.floatBytes) } : provider.kernels
    const kernel = kernels[c.kernel] as unknown as (...args: number[]) => void
    const args = c.args(at)
    const expected = catalog[c.kernel].tensors.length + catalog[c.kernel].scalars.length
    if (args.length !== expected) throw new Error(`${c.kernel} ${c.label}: ${args.length} arguments, the catalog has ${expected}`)
    kernel(...args)
    return c.outputs.map((name) => {
      const b = c.buffers[name]
      const out = b.data instanceof Int32Array ? new Int32Array(b.data.length) : new Float32Array(b.data.length)
      memory.read(pointers.get(name)!, out, b.dtype)
      return out
    })
  } finally {
    for (const ptr of pointers.values()) memory.free(ptr)
  }
}

export const compare = (c: KernelCase, output: string, gpu: Values, cpu: Values): KernelResult => {
  let sumSq = 0
  for (let i = 0; i < cpu.length; i++) sumSq += cpu[i] * cpu[i]
  const rms = Math.sqrt(sumSq / Math.max(1, cpu.length))
  let worst = 0
  let diffSq = 0
  let maxAbs = 0
  let mismatches = 0
  let firstBad = -1
  for (let i = 0; i < cpu.length; i++) {
    const diff = Math.abs(gpu[i] - cpu[i])
    const bound = c.exact ? 0 : 2 ** -7 * Math.abs(cpu[i]) + (c.rmsTolerance ?? 1e-3) * rms
    const ok = Number.isFinite(gpu[i]) && (c.exact ? gpu[i] === cpu[i] : diff <= bound)
    if (!ok) {
      mismatches++
      if (firstBad < 0) firstBad = i
    }
    if (Number.isFinite(diff)) {
      diffSq += diff * diff
      maxAbs = Math.max(maxAbs, diff)
      if (!c.exact) worst = Math.max(worst, diff / bound)
    } else worst = Number.POSITIVE_INFINITY
  }
  const normwise = sumSq > 0 ? Math.sqrt(diffSq / sumSq) : Math.sqrt(diffSq)
  const normwiseOk = c.exact || c.normwiseTolerance === undefined || normwise <= c.normwiseTolerance
  return {
    kernel: c.kernel,
    case: c.label,
    output,
    elements: cpu.length,
    worstOfBound: worst,
    normwise,
    maxAbs,
    mismatches,
    pass: mismatches === 0 && normwiseOk,
    ...(firstBad >= 0
      ? { note: `element ${firstBad}: gpu ${gpu[firstBad]} vs cpu ${cpu[firstBad]}` }
      : normwiseOk ? {} : { note: `normwise error over ${c.normwiseTolerance}` })
  }
}

/** every case on both providers; a case that throws on either is one failed result */
export const checkKernels = (gpu: KernelProvider, cpu: KernelProvider): KernelResult[] =>
  kernelCases().flatMap((c) => {
    try {
      const cpuOut = runCase(cpu, c)
      const gpuOut = runCase(gpu, c)
      const results = c.outputs.map((output, i) => compare(c, output, gpuOut[i], cpuOut[i]))
      if (!c.againstSequence) return results
      const sequenceOut = runCase(gpu, c, true)
      const exact: KernelCase = {
        ...c,
        label: `${c.label}, fused against its sequence`,
        ...(c.sequenceRmsTolerance === undefined ? { exact: true } : { rmsTolerance: c.sequenceRmsTolerance })
      }
      return [...results, ...c.outputs.map((output, i) => compare(exact, output, gpuOut[i], sequenceOut[i]))]
    } catch (error) {
      return [{
        kernel: c.kernel, case: c.label, output: c.outputs.join(","), elements: 0, worstOfBound: Number.POSITIVE_INFINITY,
        normwise: Number.NaN, maxAbs: Number.NaN, mismatches: -1, pass: false, note: error instanceof Error ? error.message : String(error)
      }]
    }
  })
