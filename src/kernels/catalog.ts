/**
 * The kernel catalog: every kernel described once. Providers (WASM on any CPU, CUDA on
 * GPUs) bind these descriptions to their native entry points; stages call kernels through
 * the bound `Kernels` object and never know which provider runs them.
 *
 * Conventions shared by every provider:
 * - A tensor argument is a pointer (a byte offset into the provider's memory) to a dense
 *   row-major array. Its `shape` lists the scalar arguments that size it.
 * - Element types: `float` is an activation or weight in the provider's float storage
 *   (`DeviceMemory.floatBytes`: f32 on the CPU, bf16 on GPUs; kernels accumulate in f32);
 *   `f32` is f32 on every provider (rope's inverse frequencies: rounded to bf16 they would
 *   turn into angle errors that grow with the position); `i32` is an index or id.
 * - Scalars are i32 sizes and indices, except those named in `f32Scalars`.
 * - Weights of a linear layer are stored as HF stores them: `[outFeatures, inFeatures]`,
 *   so `y = x @ W^T`.
 * - The KV cache of one layer is `[numBlocks, blockSize, numKvHeads, headDim]`: a token's
 *   slot is `block * blockSize + offsetInBlock`.
 * - Arguments are passed positionally in the order: tensors, then scalars.
 * - `split` names the shape role a provider may partition across threads (each part runs
 *   the kernel on `[begin, end)` of that role); kernels without `split` run whole.
 * - A `composite` kernel is defined as a sequence of the others (composite.ts): a provider may
 *   run it as one kernel, giving the sequence's results, or run the sequence itself.
 */

export type DType = "float" | "f32" | "i32"

export interface TensorArg {
  readonly name: string
  readonly dtype: DType
  readonly shape: ReadonlyArray<string>
  /** true when the kernel writes this tensor */
  readonly out?: boolean
}

export interface KernelSpec {
  readonly tensors: ReadonlyArray<TensorArg>
  readonly scalars: ReadonlyArray<string>
  readonly split?: string
  readonly composite?: true
  readonly doc: string
}

const float = (name: string, shape: ReadonlyArray<string>, out = false): TensorArg => ({ name, dtype: "float", shape, out })
const f32 = (name: string, shape: ReadonlyArray<string>, out = false): TensorArg => ({ name, dtype: "f32", shape, out })
const i32 = (name: string, shape: ReadonlyArray<string>, out = false): TensorArg => ({ name, dtype: "i32", shape, out })
/** the qkv projection's weight, and what rope and the cache write take besides its output */
const qkvWeightAndCache: [TensorArg, TensorArg, TensorArg, TensorArg, TensorArg, TensorArg] = [
  float("w", ["Hq+2Hkv", "D", "K"]),
  float("kCache", ["numSlots", "Hkv", "D"], true),
  float("vCache", ["numSlots", "Hkv", "D"], true),
  i32("positions", ["T"]),
  f32("invFreq", ["D/2"]),
  i32("slots", ["T"])
]
/** add_rmsnorm's residual stream, out and in, and the rows x added to it ([T, width] each) */
const residualAdd = (width: string): [TensorArg, TensorArg, TensorArg] => [
  f32("residualOut", ["T", width], true),
  f32("residualIn", ["T", width]),
  float("x", ["T", width])
]

export const catalog = {
  embedding: {
    doc: "out[t] = table[ids[t] - vocabStart] when vocabStart <= ids[t] < vocabEnd, else 0 (vocab-parallel shard)",
    tensors: [float("out", ["T", "H"], true), i32("ids", ["T"]), float("table", ["Vshard", "H"])],
    scalars: ["T", "H", "vocabStart", "vocabEnd"],
    split: "T"
  },
  matmul: {
    doc: "out[M,N] = x[M,K] @ w[N,K]^T",
    tensors: [float("out", ["M", "N"], true), float("x", ["M", "K"]), float("w", ["N", "K"])],
    scalars: ["M", "N", "K"],
    split: "N"
  },
  add_bias: {
    doc: "x[m,n] += bias[n]",
    tensors: [float("x", ["M", "N"], true), float("bias", ["N"])],
    scalars: ["M", "N"],
    split: "M"
  },
  rmsnorm: {
    doc: "out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w  (rows of length H; out may alias x)",
    tensors: [float("out", ["T", "H"], true), float("x", ["T", "H"]), float("w", ["H"])],
    scalars: ["T", "H", "eps"],
    split: "T"
  },
  add_rmsnorm: {
    doc:
      "residualOut[t] = (accumulate ? residualIn[t] : 0) + x[t]; out[t] = rmsnorm(residualOut[t]) * w  (out may alias x, " +
      "residualOut residualIn). The residual stream is f32 on every provider: a bf16 one rounds every layer's sum, and " +
      "those roundings add up to several times the error of the rest of a bf16 forward pass",
    tensors: [float("out", ["T", "H"], true), ...residualAdd("H"), float("w", ["H"])],
    scalars: ["T", "H", "eps", "accumulate"],
    split: "T"
  },
  head_rmsnorm: {
    doc: "per-head RMSNorm in place (Qwen3 q/k norm): x[t,h] = rmsnorm(x[t,h]) * w for heads of length D, rows of token t start at t*stride",
    tensors: [float("x", ["T", "nHeads", "D"], true), float("w", ["D"])],
    scalars: ["T", "nHeads", "D", "stride", "eps"],
    split: "T"
  },
  rope: {
    doc: "rotate q and k in place (rotate-half / NeoX layout): angle = positions[t] * invFreq[i], pairs (i, i + D/2)",
    tensors: [
      float("q", ["T", "Hq", "D"], true),
      float("k", ["T", "Hkv", "D"], true),
      i32("positions", ["T"]),
      f32("invFreq", ["D/2"])
    ],
    scalars: ["T", "Hq", "Hkv", "D", "qStride", "kStride"],
    split: "T"
  },
  silu_mul: {
    doc: "out[t,i] = silu(gateUp[t,i]) * gateUp[t,I+i]",
    tensors: [float("out", ["T", "I"], true), float("gateUp", ["T", "2I"])],
    scalars: ["T", "I"],
    split: "T"
  },
  kv_write: {
    doc: "kCache[slots[t]] = k[t]; vCache[slots[t]] = v[t] (slots < 0 are skipped: padding)",
    tensors: [
      float("kCache", ["numSlots", "Hkv", "D"], true),
      float("vCache", ["numSlots", "Hkv", "D"], true),
      float("k", ["T", "Hkv", "D"]),
      float("v", ["T", "Hkv", "D"]),
      i32("slots", ["T"])
    ],
    scalars: ["T", "Hkv", "D", "kStride", "vStride"],
    split: "T"
  },
  rope_kv_write: {
    doc:
      "rope, then kv_write of the rotated k and of v, in one pass over the step's rows (what attention needs before it reads " +
      "the cache): q and k rotated in place as rope does; kCache[slots[t]] = k[t], vCache[slots[t]] = v[t] (slots < 0 skipped)",
    tensors: [
      float("q", ["T", "Hq", "D"], true),
      float("k", ["T", "Hkv", "D"], true),
      float("kCache", ["numSlots", "Hkv", "D"], true),
      float("vCache", ["numSlots", "Hkv", "D"], true),
      float("v", ["T", "Hkv", "D"]),
      i32("positions", ["T"]),
      f32("invFreq", ["D/2"]),
      i32("slots", ["T"])
    ],
    scalars: ["T", "Hq", "Hkv", "D", "qStride", "kStride", "vStride"],
    split: "T"
  },
  qkv_rope_kv_write: {
    doc:
      "qkv = x @ w^T, then rope_kv_write over it: the fused q, k, v projection of the step's rows (row t: Hq q heads, Hkv k " +
      "heads, Hkv v heads of D), q and k rotated in place, the rotated k and v stored in the cache slots. One launch at " +
      "decode sizes on the GPU instead of two, with the same results",
    tensors: [
      float("qkv", ["T", "Hq+2Hkv", "D"], true),
      float("x", ["T", "K"]),
      ...qkvWeightAndCache
    ],
    scalars: ["T", "K", "Hq", "Hkv", "D"],
    composite: true
  },
  gate_up_silu: {
    doc:
      "gateUp = x @ w^T, then silu_mul(out, gateUp): the gated MLP's fused gate and up projection (w: I gate rows, then I up " +
      "rows) and its activation. gateUp is scratch: where the GPU makes both in one launch (decode sizes) it is not written",
    tensors: [float("out", ["T", "I"], true), float("gateUp", ["T", "2I"], true), float("x", ["T", "K"]), float("w", ["2I", "K"])],
    scalars: ["T", "I", "K"],
    composite: true
  },
  add_rmsnorm_qkv_rope_kv_write: {
    doc:
      "add_rmsnorm(normed, residualOut, residualIn, x, normWeight), then qkv_rope_kv_write over normed: a pre-norm layer's " +
      "residual add, norm and attention input in one launch at decode sizes on the GPU, where residualOut is not " +
      "residualIn (its blocks all read residualIn while each writes its share of residualOut). There the norm's 1 / rms " +
      "scales the projection's sums instead of its input, so the results are the sequence's up to where one bf16 " +
      "rounding falls, and normed (scratch) is not written",
    tensors: [
      float("qkv", ["T", "Hq+2Hkv", "D"], true),
      float("normed", ["T", "K"], true),
      ...residualAdd("K"),
      float("normWeight", ["K"]),
      ...qkvWeightAndCache
    ],
    scalars: ["eps", "accumulate", "T", "K", "Hq", "Hkv", "D"],
    composite: true
  },
  add_rmsnorm_gate_up_silu: {
    doc:
      "add_rmsnorm(normed, residualOut, residualIn, x, normWeight), then gate_up_silu over normed: the gated MLP's residual " +
      "add, norm, input projection and activation in one launch at decode sizes on the GPU, where residualOut is not " +
      "residualIn (as add_rmsnorm_qkv_rope_kv_write; normed and gateUp are scratch)",
    tensors: [
      float("out", ["T", "I"], true),
      float("gateUp", ["T", "2I"], true),
      float("normed", ["T", "K"], true),
      ...residualAdd("K"),
      float("normWeight", ["K"]),
      float("w", ["2I", "K"])
    ],
    scalars: ["eps", "accumulate", "T", "I", "K"],
    composite: true
  },
  paged_attention: {
    doc:
      "out[t,h] = softmax(q[t,h] . K[s,0..positions[t]] * scale) V[s,...] over the paged cache of sequence s = queryToSeq[t]; " +
      "token j of sequence s lives at slot blockTables[s*maxBlocks + j/blockSize]*blockSize + j%blockSize; GQA: kv head = h / (Hq/Hkv). " +
      "Causal by construction (prefill, chunked prefill and decode are one kernel). maxQueryLen: no sequence has more query " +
      "tokens in the call (1 for a batch of decodes; T is always safe); a provider may skip its prefill path below its tile",
    tensors: [
      float("out", ["T", "Hq", "D"], true),
      float("q", ["T", "Hq", "D"]),
      float("kCache", ["numSlots", "Hkv", "D"]),
      float("vCache", ["numSlots", "Hkv", "D"]),
      i32("queryToSeq", ["T"]),
      i32("positions", ["T"]),
      i32("blockTables", ["S", "maxBlocks"])
    ],
    scalars: ["T", "Hq", "Hkv", "D", "qStride", "maxBlocks", "blockSize", "scale", "maxQueryLen"],
    // (token, kv head) pairs, t * Hkv + g: one decode token still spreads over threads
    split: "T*Hkv"
  },
  take_tokens: {
    doc:
      "ids[t] = argmax[from[t]] where from[t] >= 0, drawn[-2 - from[t]] where from[t] <= -2, unchanged where from[t] = -1: " +
      "a step's input ids taken from the tokens the step before chose (its argmax or its device draw of a sample row), " +
      "still on the device, so the host can launch the step before it has them (asynchronous scheduling)",
    tensors: [i32("ids", ["T"], true), i32("from", ["T"]), i32("argmax", ["S"]), i32("drawn", ["S"])],
    scalars: ["T"]
  },
  gather_rows: {
    doc: "out[r] = x[indices[r]] (rows of length H)",
    tensors: [float("out", ["R", "H"], true), float("x", ["T", "H"]), i32("indices", ["R"])],
    scalars: ["R", "H"],
    split: "R"
  },
  argmax: {
    doc: "out[m] = argmax_v logits[m,v] (first index on ties)",
    tensors: [i32("out", ["M"], true), float("logits", ["M", "V"])],
    scalars: ["M", "V"],
    split: "M"
  },
  softmax: {
    doc: "x[m] = softmax(x[m] / temperature) in place (rows of length V)",
    tensors: [float("x", ["M", "V"], true)],
    scalars: ["M", "V", "temperature"],
    split: "M"
  },
  copy: {
    doc: "out[i] = x[i] for n float elements",
    tensors: [float("out", ["n"], true), float("x", ["n"])],
    scalars: ["n"]
  }
} as const satisfies Record<string, KernelSpec>

export type KernelName = keyof typeof catalog

type Numbers<T extends ReadonlyArray<unknown>> = { -readonly [I in keyof T]: number }
type Arity<S extends KernelSpec> = [...Numbers<S["tensors"]>, ...Numbers<S["scalars"]>]

/** The bound kernels: one positional function per catalog entry (tensor pointers, then scalars). */
export type Kernels = { readonly [K in KernelName]: (...args: Arity<(typeof catalog)[K]>) => void }

/** the scalars passed as f32; every other scalar is an i32 */
export const f32Scalars: ReadonlySet<string> = new Set(["eps", "scale", "temperature"])

export const scalarType = (name: string): "f32" | "i32" => (f32Scalars.has(name) ? "f32" : "i32")

export const kernelArity = (name: KernelName): number => catalog[name].tensors.length + catalog[name].scalars.length
