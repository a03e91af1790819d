/**
 * The kernel catalog: every kernel described once. Providers (WASM on any CPU, CUDA on
 * GPUs) bind these descriptions to their native entry points; stages call kernels through
 * the bound `Kernels` object and never know which provider runs them.
 *
 * Conventions shared by every provider:
 * - A tensor argument is a pointer (a byte offset into the provider's memory) to a dense
 *   row-major array. Its `shape` lists the scalar arguments that size it.
 * - Activations are f32 on the CPU. Weights of a linear layer are stored as HF stores them:
 *   `[outFeatures, inFeatures]`, so `y = x @ W^T`.
 * - The KV cache of one layer is `[numBlocks, blockSize, numKvHeads, headDim]`: a token's
 *   slot is `block * blockSize + offsetInBlock`.
 * - Arguments are passed positionally in the order: tensors, then scalars.
 * - `split` names the shape role a provider may partition across threads (each part runs
 *   the kernel on `[begin, end)` of that role); kernels without `split` run whole.
 */

export type DType = "f32" | "i32"

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
  readonly doc: string
}

const f32 = (name: string, shape: ReadonlyArray<string>, out = false): TensorArg => ({ name, dtype: "f32", shape, out })
const i32 = (name: string, shape: ReadonlyArray<string>, out = false): TensorArg => ({ name, dtype: "i32", shape, out })

export const catalog = {
  embedding: {
    doc: "out[t] = table[ids[t] - vocabStart] when vocabStart <= ids[t] < vocabEnd, else 0 (vocab-parallel shard)",
    tensors: [f32("out", ["T", "H"], true), i32("ids", ["T"]), f32("table", ["Vshard", "H"])],
    scalars: ["T", "H", "vocabStart", "vocabEnd"],
    split: "T"
  },
  matmul: {
    doc: "out[M,N] = x[M,K] @ w[N,K]^T",
    tensors: [f32("out", ["M", "N"], true), f32("x", ["M", "K"]), f32("w", ["N", "K"])],
    scalars: ["M", "N", "K"],
    split: "N"
  },
  add_bias: {
    doc: "x[m,n] += bias[n]",
    tensors: [f32("x", ["M", "N"], true), f32("bias", ["N"])],
    scalars: ["M", "N"],
    split: "M"
  },
  rmsnorm: {
    doc: "out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w  (rows of length H; out may alias x)",
    tensors: [f32("out", ["T", "H"], true), f32("x", ["T", "H"]), f32("w", ["H"])],
    scalars: ["T", "H", "eps"],
    split: "T"
  },
  add_rmsnorm: {
    doc: "residual[t] += x[t]; out[t] = rmsnorm(residual[t]) * w  (out may alias x)",
    tensors: [f32("out", ["T", "H"], true), f32("residual", ["T", "H"], true), f32("x", ["T", "H"]), f32("w", ["H"])],
    scalars: ["T", "H", "eps"],
    split: "T"
  },
  head_rmsnorm: {
    doc: "per-head RMSNorm in place (Qwen3 q/k norm): x[t,h] = rmsnorm(x[t,h]) * w for heads of length D, rows of token t start at t*stride",
    tensors: [f32("x", ["T", "nHeads", "D"], true), f32("w", ["D"])],
    scalars: ["T", "nHeads", "D", "stride", "eps"],
    split: "T"
  },
  rope: {
    doc: "rotate q and k in place (rotate-half / NeoX layout): angle = positions[t] * invFreq[i], pairs (i, i + D/2)",
    tensors: [
      f32("q", ["T", "Hq", "D"], true),
      f32("k", ["T", "Hkv", "D"], true),
      i32("positions", ["T"]),
      f32("invFreq", ["D/2"])
    ],
    scalars: ["T", "Hq", "Hkv", "D", "qStride", "kStride"],
    split: "T"
  },
  silu_mul: {
    doc: "out[t,i] = silu(gateUp[t,i]) * gateUp[t,I+i]",
    tensors: [f32("out", ["T", "I"], true), f32("gateUp", ["T", "2I"])],
    scalars: ["T", "I"],
    split: "T"
  },
  kv_write: {
    doc: "kCache[slots[t]] = k[t]; vCache[slots[t]] = v[t] (slots < 0 are skipped: padding)",
    tensors: [
      f32("kCache", ["numSlots", "Hkv", "D"], true),
      f32("vCache", ["numSlots", "Hkv", "D"], true),
      f32("k", ["T", "Hkv", "D"]),
      f32("v", ["T", "Hkv", "D"]),
      i32("slots", ["T"])
    ],
    scalars: ["T", "Hkv", "D", "kStride", "vStride"],
    split: "T"
  },
  paged_attention: {
    doc:
      "out[t,h] = softmax(q[t,h] . K[s,0..positions[t]] * scale) V[s,...] over the paged cache of sequence s = queryToSeq[t]; " +
      "token j of sequence s lives at slot blockTables[s*maxBlocks + j/blockSize]*blockSize + j%blockSize; GQA: kv head = h / (Hq/Hkv). " +
      "Causal by construction (prefill, chunked prefill and decode are one kernel)",
    tensors: [
      f32("out", ["T", "Hq", "D"], true),
      f32("q", ["T", "Hq", "D"]),
      f32("kCache", ["numSlots", "Hkv", "D"]),
      f32("vCache", ["numSlots", "Hkv", "D"]),
      i32("queryToSeq", ["T"]),
      i32("positions", ["T"]),
      i32("blockTables", ["S", "maxBlocks"])
    ],
    scalars: ["T", "Hq", "Hkv", "D", "qStride", "maxBlocks", "blockSize", "scale"],
    split: "T"
  },
  gather_rows: {
    doc: "out[r] = x[indices[r]] (rows of length H)",
    tensors: [f32("out", ["R", "H"], true), f32("x", ["T", "H"]), i32("indices", ["R"])],
    scalars: ["R", "H"],
    split: "R"
  },
  argmax: {
    doc: "out[m] = argmax_v logits[m,v] (first index on ties)",
    tensors: [i32("out", ["M"], true), f32("logits", ["M", "V"])],
    scalars: ["M", "V"],
    split: "M"
  },
  softmax: {
    doc: "x[m] = softmax(x[m] / temperature) in place (rows of length V)",
    tensors: [f32("x", ["M", "V"], true)],
    scalars: ["M", "V", "temperature"],
    split: "M"
  },
  copy: {
    doc: "out[i] = x[i] for n f32 elements",
    tensors: [f32("out", ["n"], true), f32("x", ["n"])],
    scalars: ["n"]
  }
} as const satisfies Record<string, KernelSpec>

export type KernelName = keyof typeof catalog

type Numbers<T extends ReadonlyArray<unknown>> = { -readonly [I in keyof T]: number }
type Arity<S extends KernelSpec> = [...Numbers<S["tensors"]>, ...Numbers<S["scalars"]>]

/** The bound kernels: one positional function per catalog entry (tensor pointers, then scalars). */
export type Kernels = { readonly [K in KernelName]: (...args: Arity<(typeof catalog)[K]>) => void }

export const kernelArity = (name: KernelName): number => catalog[name].tensors.length + catalog[name].scalars.length
