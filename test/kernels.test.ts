/**
 * The WASM kernels against float64 references, on odd sizes.
 *
 * Every case runs twice: on one thread, and on two threads with every call split
 * (minSplitWork 0). The two must agree bit for bit: a split only chooses which thread computes
 * an output element, never the order of the arithmetic inside it.
 *
 * Tolerances. Inputs are f32 values and the reference computes on exactly those values in
 * f64, so the only error is the kernel's f32 arithmetic. With u = 2^-24 (unit roundoff), a sum
 * whose longest chain of additions is n has error at most about n·u·Σ|terms| (Higham,
 * "Accuracy and Stability of Numerical Algorithms", §4.2). Each check states its chain and
 * asserts that bound: it holds for any input, and a wrong index or a dropped term exceeds it
 * by orders of magnitude. Copies and lookups are exact.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createWasmProvider, type WasmKernelProvider } from "../src/kernels/wasm/provider.ts"

const u = 2 ** -24
/** longest addition chain of the kernels' dot products of length n: n/4 per lane, fold, tail */
const chain = (n: number) => Math.ceil(n / 4) + 5

let single: WasmKernelProvider
let split: WasmKernelProvider
// the first provider of a fresh clone compiles kernels.wasm (seconds): past the default hook timeout
beforeAll(async () => {
  single = await createWasmProvider({ threads: 1 })
  split = await createWasmProvider({ threads: 2, minSplitWork: 0 })
}, 120_000)
afterAll(() => {
  single?.close()
  split?.close()
})

/** deterministic uniform values in [lo, hi) (mulberry32) */
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let r = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r
  return ((r ^ (r >>> 14)) >>> 0) / 2 ** 32
}
const uniform = (n: number, seed: number, lo = -1, hi = 1) => {
  const next = random(seed)
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * next())
}

type Tensor = Float32Array | Int32Array
type Case = (p: WasmKernelProvider) => Tensor[]

/** tensors of one kernel call in a provider's memory, freed together */
const scope = (p: WasmKernelProvider) => {
  const owned: number[] = []
  const put = (data: Tensor) => {
    const ptr = p.memory.alloc(data.byteLength)
    p.memory.write(ptr, data)
    owned.push(ptr)
    return ptr
  }
  const get = <A extends Tensor>(ptr: number, like: A): A => {
    const out = like.slice() as A
    p.memory.read(ptr, out)
    return out
  }
  return { put, get, free: () => owned.forEach((ptr) => p.memory.free(ptr)) }
}

/** runs a case on one thread and split over two; returns the one-thread outputs after checking they agree bitwise */
const onBoth = (run: Case): Tensor[] => {
  const one = run(single)
  const two = run(split)
  one.forEach((t, i) => expect(new Uint32Array(two[i].buffer)).toEqual(new Uint32Array(t.buffer)))
  return one
}

/** asserts |actual[i] - expected[i]| <= bound(i) for every i, reporting the worst offender */
const expectWithin = (actual: ArrayLike<number>, expected: ArrayLike<number>, bound: (i: number) => number) => {
  expect(actual.length).toBe(expected.length)
  let worst = { i: -1, excess: 0 }
  for (let i = 0; i < expected.length; i++) {
    const excess = Math.abs(actual[i] - expected[i]) / bound(i)
    if (!(excess <= 1) && !(excess <= worst.excess)) worst = { i, excess }
  }
  expect(worst.i === -1 ? "all within bound" : `element ${worst.i}: ${actual[worst.i]} vs ${expected[worst.i]}`).toBe("all within bound")
}

describe("matmul", () => {
  // M crosses the kernel's tile of x rows (85 rows at K = 769); N % 4 and K % 4 leave tails
  it.each([
    [1, 83, 769],
    [3, 83, 769],
    [7, 83, 769],
    [90, 9, 769],
    [5, 16, 64],
    [2, 3, 3]
  ])("M=%i N=%i K=%i", (M, N, K) => {
    const x = uniform(M * K, 1)
    const w = uniform(N * K, 2)
    const [out] = onBoth((p) => {
      const s = scope(p)
      const o = s.put(new Float32Array(M * N))
      p.kernels.matmul(o, s.put(x), s.put(w), M, N, K)
      const result = s.get(o, new Float32Array(M * N))
      s.free()
      return [result]
    })
    const ref = new Float64Array(M * N)
    const absSum = new Float64Array(M * N)
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++)
        for (let k = 0; k < K; k++) {
          ref[m * N + n] += x[m * K + k] * w[n * K + k]
          absSum[m * N + n] += Math.abs(x[m * K + k] * w[n * K + k])
        }
    // one product rounding plus the dot product's chain
    expectWithin(out, ref, (i) => (chain(K) + 1) * u * absSum[i])
  })

  it("add_bias adds the bias to every row (one rounding)", () => {
    const [M, N] = [7, 83]
    const x = uniform(M * N, 3)
    const bias = uniform(N, 4)
    const [out] = onBoth((p) => {
      const s = scope(p)
      const ptr = s.put(x)
      p.kernels.add_bias(ptr, s.put(bias), M, N)
      const result = s.get(ptr, x)
      s.free()
      return [result]
    })
    expectWithin(out, Array.from(x, (v, i) => v + bias[i % N]), (i) => u * Math.abs(x[i] + bias[i % N]) + 1e-45)
  })
})

describe("norms", () => {
  const [T, H, eps] = [7, 769, 1e-6]
  const rmsRef = (row: ArrayLike<number>, w: ArrayLike<number>) => {
    let ss = 0
    for (let i = 0; i < row.length; i++) ss += row[i] * row[i]
    const inv = 1 / Math.sqrt(ss / row.length + eps)
    return Array.from(w, (wi, i) => row[i] * inv * wi)
  }
  // the sum of squares has a chain of H/4 + 5; its relative error halves under the square
  // root; the division, root and two products add a few roundings
  const rmsBound = (n: number) => (ref: number) => ((chain(n) + 1) / 2 + 8) * u * Math.abs(ref) + 1e-30

  it("rmsnorm", () => {
    const x = uniform(T * H, 5, -3, 3)
    const w = uniform(H, 6, 0.5, 1.5)
    const [out] = onBoth((p) => {
      const s = scope(p)
      const o = s.put(new Float32Array(T * H))
      p.kernels.rmsnorm(o, s.put(x), s.put(w), T, H, eps)
      const result = s.get(o, x)
      s.free()
      return [result]
    })
    const ref = Array.from({ length: T }, (_, t) => rmsRef(x.subarray(t * H, (t + 1) * H), w)).flat()
    expectWithin(out, ref, (i) => rmsBound(H)(ref[i]))
  })

  it.each([
    [false, true, 1],
    [true, true, 1],
    [false, true, 0],
    [true, true, 0],
    [false, false, 1],
    [true, false, 0]
  ])("add_rmsnorm (out aliases x: %s, residual in place: %s, accumulate: %i)", (aliased, inPlace, accumulate) => {
    const x = uniform(T * H, 7, -3, 3)
    const residual = uniform(T * H, 8, -3, 3)
    const w = uniform(H, 9, 0.5, 1.5)
    const [out, newResidual, oldResidual] = onBoth((p) => {
      const s = scope(p)
      const [xp, rp] = [s.put(x), s.put(residual)]
      const o = aliased ? xp : s.put(new Float32Array(T * H))
      const rOut = inPlace ? rp : s.put(new Float32Array(T * H).fill(Number.NaN))
      p.kernels.add_rmsnorm(o, rOut, rp, xp, s.put(w), T, H, eps, accumulate)
      const result = [s.get(o, x), s.get(rOut, x), s.get(rp, x)]
      s.free()
      return result
    })
    // written elsewhere, the residual read is left as it was
    if (!inPlace) expect(Array.from(oldResidual)).toEqual(Array.from(residual))
    // accumulate 0 starts the residual: x itself, whatever the buffer held
    const sum = Array.from(x, (v, i) => v + (accumulate ? residual[i] : 0))
    expectWithin(newResidual, sum, (i) => u * Math.abs(sum[i]) + 1e-45)
    // the reference normalises the f32-rounded residual, which is what the kernel stores
    const ref = Array.from({ length: T }, (_, t) => rmsRef(newResidual.subarray(t * H, (t + 1) * H), w)).flat()
    expectWithin(out, ref, (i) => rmsBound(H)(ref[i]))
  })

  it("head_rmsnorm normalises each head of the q part of a fused qkv row, in place", () => {
    const [D, Hq, Hkv] = [64, 4, 2]
    const stride = (Hq + 2 * Hkv) * D
    const qkv = uniform(T * stride, 10, -3, 3)
    const w = uniform(D, 11, 0.5, 1.5)
    const [out] = onBoth((p) => {
      const s = scope(p)
      const ptr = s.put(qkv)
      p.kernels.head_rmsnorm(ptr, s.put(w), T, Hq, D, stride, eps)
      const result = s.get(ptr, qkv)
      s.free()
      return [result]
    })
    const ref = Array.from(qkv) as number[]
    for (let t = 0; t < T; t++)
      for (let h = 0; h < Hq; h++) {
        const at = t * stride + h * D
        ref.splice(at, D, ...rmsRef(qkv.subarray(at, at + D), w))
      }
    // the k and v parts of the row are untouched: their bound is ~0
    expectWithin(out, ref, (i) => rmsBound(D)(ref[i]))
  })
})

describe("rope", () => {
  // D = 36: D/2 = 18 is not a multiple of 4, which exercises the scalar tail
  it.each([64, 32, 36])("rotates q and k inside a fused qkv row, D=%i", (D) => {
    const [T, Hq, Hkv] = [7, 4, 2]
    const stride = (Hq + 2 * Hkv) * D
    const qkv = uniform(T * stride, 12)
    const positions = Int32Array.from([0, 1, 17, 18, 19, 4095, 100_000])
    // not a plain geometric series: every frequency scaled differently, as rope scaling does
    const invFreq = Float32Array.from({ length: D / 2 }, (_, i) => 10000 ** ((-2 * i) / D) * (1 + 0.3 * Math.sin(i)))
    const [out] = onBoth((p) => {
      const s = scope(p)
      const ptr = s.put(qkv)
      p.kernels.rope(ptr, ptr + Hq * D * 4, s.put(positions), s.put(invFreq), T, Hq, Hkv, D, stride, stride)
      const result = s.get(ptr, qkv)
      s.free()
      return [result]
    })
    const ref = Float64Array.from(qkv)
    const bound = new Float64Array(qkv.length).fill(1e-45)
    for (let t = 0; t < T; t++)
      for (let h = 0; h < Hq + Hkv; h++)
        for (let i = 0; i < D / 2; i++) {
          const at = t * stride + h * D + i
          const [x1, x2] = [qkv[at], qkv[at + D / 2]]
          const angle = positions[t] * invFreq[i]
          ref[at] = x1 * Math.cos(angle) - x2 * Math.sin(angle)
          ref[at + D / 2] = x2 * Math.cos(angle) + x1 * Math.sin(angle)
          // cos and sin rounded to f32, two products, one sum: four roundings of |x1| + |x2|
          bound[at] = bound[at + D / 2] = 4 * u * (Math.abs(x1) + Math.abs(x2))
        }
    // the v part of the row is untouched: its bound stays (almost) zero
    expectWithin(out, ref, (i) => bound[i])
  })
})

describe("activation", () => {
  it("silu_mul, including gates that overflow exp", () => {
    const [T, I] = [7, 769]
    const gateUp = uniform(T * 2 * I, 13, -8, 8)
    gateUp[0] = -100
    gateUp[1] = 100
    const [out] = onBoth((p) => {
      const s = scope(p)
      const o = s.put(new Float32Array(T * I))
      p.kernels.silu_mul(o, s.put(gateUp), T, I)
      const result = s.get(o, new Float32Array(T * I))
      s.free()
      return [result]
    })
    const ref = Array.from({ length: T * I }, (_, j) => {
      const [t, i] = [Math.floor(j / I), j % I]
      const g = gateUp[t * 2 * I + i]
      return (g / (1 + Math.exp(-g))) * gateUp[t * 2 * I + I + i]
    })
    // exp within 1 ulp, then an add, a division and a product: a few roundings
    expectWithin(out, ref, (i) => 8 * u * Math.abs(ref[i]) + 1e-40)
  })
})

describe("lookups and copies (exact)", () => {
  const [T, H] = [7, 769]

  it("embedding reads the vocab shard [100, 150) and zeroes other tokens", () => {
    const [vocabStart, vocabEnd] = [100, 150]
    const table = uniform((vocabEnd - vocabStart) * H, 14)
    const ids = Int32Array.from([99, 100, 149, 150, 0, 123, 100])
    const [out] = onBoth((p) => {
      const s = scope(p)
      const o = s.put(uniform(T * H, 15))
      p.kernels.embedding(o, s.put(ids), s.put(table), T, H, vocabStart, vocabEnd)
      const result = s.get(o, new Float32Array(T * H))
      s.free()
      return [result]
    })
    const ref = Array.from(ids, (id) =>
      id >= vocabStart && id < vocabEnd ? Array.from(table.subarray((id - vocabStart) * H, (id - vocabStart + 1) * H)) : new Array(H).fill(0)
    ).flat()
    expect(Array.from(out)).toEqual(ref)
  })

  it("gather_rows", () => {
    const x = uniform(T * H, 16)
    const indices = Int32Array.from([6, 0, 3])
    const [out] = onBoth((p) => {
      const s = scope(p)
      const o = s.put(new Float32Array(3 * H))
      p.kernels.gather_rows(o, s.put(x), s.put(indices), 3, H)
      const result = s.get(o, new Float32Array(3 * H))
      s.free()
      return [result]
    })
    expect(Array.from(out)).toEqual(Array.from(indices, (r) => Array.from(x.subarray(r * H, (r + 1) * H))).flat())
  })

  it("take_tokens takes each id from the step before's argmax or draw, or keeps it", () => {
    const argmax = Int32Array.of(11, 12, 13)
    const drawn = Int32Array.of(21, 22, 23)
    const from = Int32Array.of(2, -1, -2, -4, 0, -1)
    const [out] = onBoth((p) => {
      const s = scope(p)
      const ids = s.put(Int32Array.of(1, 2, 3, 4, 5, 6))
      p.kernels.take_tokens(ids, s.put(from), s.put(argmax), s.put(drawn), from.length)
      const result = s.get(ids, new Int32Array(from.length))
      s.free()
      return [result]
    })
    expect(Array.from(out)).toEqual([13, 2, 21, 23, 11, 6])
  })

  it("copy", () => {
    const x = uniform(1003, 17)
    const [out] = onBoth((p) => {
      const s = scope(p)
      const o = s.put(new Float32Array(x.length))
      p.kernels.copy(o, s.put(x), x.length)
      const result = s.get(o, x)
      s.free()
      return [result]
    })
    expect(out).toEqual(x)
  })
})

describe("sampling", () => {
  it("argmax takes the first index on ties", () => {
    const V = 1003
    const logits = uniform(4 * V, 18, -5, 5)
    // row 0: the maximum three times, in different SIMD lanes and in the tail
    for (const i of [517, 13, 1001]) logits[i] = 9
    // row 1: every logit equal; row 2: the maximum in the scalar tail only; row 3: -Infinity everywhere
    logits.fill(0.5, V, 2 * V)
    logits[2 * V + 1002] = 7
    logits.fill(-Infinity, 3 * V, 4 * V)
    const [out] = onBoth((p) => {
      const s = scope(p)
      const o = s.put(new Int32Array(4))
      p.kernels.argmax(o, s.put(logits), 4, V)
      const result = s.get(o, new Int32Array(4))
      s.free()
      return [result]
    })
    expect(Array.from(out)).toEqual([13, 0, 1002, 0])
  })

  it("argmax of rows shorter than a SIMD vector", () => {
    const logits = Float32Array.from([1, 3, 3, -1, -2, -1])
    const [out] = onBoth((p) => {
      const s = scope(p)
      const o = s.put(new Int32Array(2))
      p.kernels.argmax(o, s.put(logits), 2, 3)
      const result = s.get(o, new Int32Array(2))
      s.free()
      return [result]
    })
    expect(Array.from(out)).toEqual([1, 0])
  })

  it("softmax with temperature", () => {
    const [M, V, temperature] = [3, 1003, 0.7]
    const logits = uniform(M * V, 19, -5, 5)
    const [out] = onBoth((p) => {
      const s = scope(p)
      const ptr = s.put(logits)
      p.kernels.softmax(ptr, M, V, temperature)
      const result = s.get(ptr, logits)
      s.free()
      return [result]
    })
    const ref: number[] = []
    let maxArg = 0
    for (let m = 0; m < M; m++) {
      const row = Array.from(logits.subarray(m * V, (m + 1) * V))
      const top = Math.max(...row)
      const e = row.map((v) => Math.exp((v - top) / temperature))
      const sum = e.reduce((a, b) => a + b)
      ref.push(...e.map((v) => v / sum))
      maxArg = Math.max(maxArg, ...row.map((v) => (top - v) / temperature))
    }
    // the exponent (x - max) / T carries ~2 roundings relative to its size, which exp turns
    // into a relative error of the weight; exp itself, the f64 sum and the final scaling add a few
    const rel = (2 * 2 * maxArg + 8) * u
    expectWithin(out, ref, (i) => rel * ref[i] + 1e-45)
  })
})

describe("paged KV cache and attention", () => {
  // one batch: a decode (1 query at position 37), a chunked prefill starting mid-sequence
  // (positions 20..24) and a fresh prefill (positions 0..6)
  const seqs = [
    { start: 37, queries: 1 },
    { start: 20, queries: 5 },
    { start: 0, queries: 7 }
  ]
  const queryToSeq = Int32Array.from(seqs.flatMap((s, i) => new Array(s.queries).fill(i)))
  const positions = Int32Array.from(seqs.flatMap((s) => Array.from({ length: s.queries }, (_, j) => s.start + j)))
  const T = positions.length

  /** block tables over a shuffled pool of blocks, so no sequence's blocks are contiguous */
  const blockTables = (blockSize: number) => {
    const needed = seqs.map((s) => Math.ceil((s.start + s.queries) / blockSize))
    const maxBlocks = Math.max(...needed)
    const numBlocks = needed.reduce((a, b) => a + b) + 5
    const next = random(blockSize)
    const pool = Array.from({ length: numBlocks }, (_, i) => i).sort(() => next() - 0.5)
    const table = new Int32Array(seqs.length * maxBlocks)
    needed.forEach((n, s) => {
      for (let b = 0; b < maxBlocks; b++) table[s * maxBlocks + b] = b < n ? pool.pop()! : 0
    })
    return { table, maxBlocks, numBlocks }
  }
  const slotOf = (table: Int32Array, maxBlocks: number, blockSize: number, seq: number, j: number) =>
    table[seq * maxBlocks + Math.floor(j / blockSize)] * blockSize + (j % blockSize)

  it("kv_write copies k and v out of a fused qkv row and skips padding", () => {
    const [Hq, Hkv, D, blockSize] = [4, 2, 32, 4]
    const stride = (Hq + 2 * Hkv) * D
    const qkv = uniform(T * stride, 20)
    const { table, maxBlocks, numBlocks } = blockTables(blockSize)
    const slots = Int32Array.from(positions, (pos, t) => slotOf(table, maxBlocks, blockSize, queryToSeq[t], pos))
    slots[3] = -1
    const cacheFloats = numBlocks * blockSize * Hkv * D
    const [kCache, vCache] = onBoth((p) => {
      const s = scope(p)
      const [kc, vc, q] = [s.put(new Float32Array(cacheFloats)), s.put(new Float32Array(cacheFloats)), s.put(qkv)]
      p.kernels.kv_write(kc, vc, q + Hq * D * 4, q + (Hq + Hkv) * D * 4, s.put(slots), T, Hkv, D, stride, stride)
      const result = [s.get(kc, new Float32Array(cacheFloats)), s.get(vc, new Float32Array(cacheFloats))]
      s.free()
      return result
    })
    const [kRef, vRef] = [new Float32Array(cacheFloats), new Float32Array(cacheFloats)]
    slots.forEach((slot, t) => {
      if (slot < 0) return
      kRef.set(qkv.subarray(t * stride + Hq * D, t * stride + (Hq + Hkv) * D), slot * Hkv * D)
      vRef.set(qkv.subarray(t * stride + (Hq + Hkv) * D, (t + 1) * stride), slot * Hkv * D)
    })
    expect(kCache).toEqual(kRef)
    expect(vCache).toEqual(vRef)
  })

  it("rope_kv_write is rope, then kv_write of the rotated keys (bit for bit), padding rotated but not cached", () => {
    const [Hq, Hkv, D, blockSize] = [4, 2, 36, 4]
    const stride = (Hq + 2 * Hkv) * D
    const qkv = uniform(T * stride, 27)
    const invFreq = Float32Array.from({ length: D / 2 }, (_, i) => 10000 ** ((-2 * i) / D))
    const { table, maxBlocks, numBlocks } = blockTables(blockSize)
    const slots = Int32Array.from(positions, (pos, t) => slotOf(table, maxBlocks, blockSize, queryToSeq[t], pos))
    slots[3] = -1
    const cacheFloats = numBlocks * blockSize * Hkv * D
    const run = (fused: boolean) =>
      onBoth((p) => {
        const s = scope(p)
        const [kc, vc, q] = [s.put(new Float32Array(cacheFloats)), s.put(new Float32Array(cacheFloats)), s.put(qkv)]
        const [k, v, pos, freq, sl] = [q + Hq * D * 4, q + (Hq + Hkv) * D * 4, s.put(Int32Array.from(positions)), s.put(invFreq), s.put(slots)]
        if (fused) p.kernels.rope_kv_write(q, k, kc, vc, v, pos, freq, sl, T, Hq, Hkv, D, stride, stride, stride)
        else {
          p.kernels.rope(q, k, pos, freq, T, Hq, Hkv, D, stride, stride)
          p.kernels.kv_write(kc, vc, k, v, sl, T, Hkv, D, stride, stride)
        }
        const result = [s.get(q, qkv), s.get(kc, new Float32Array(cacheFloats)), s.get(vc, new Float32Array(cacheFloats))]
        s.free()
        return result
      })
    const [fused, separate] = [run(true), run(false)]
    fused.forEach((tensor, i) => expect(new Uint32Array(tensor.buffer)).toEqual(new Uint32Array(separate[i].buffer)))
    // the padding token's row is rotated in place like the others, and its keys reach no slot
    expect(fused[0]).not.toEqual(qkv)
  })

  const cases = [64, 32].flatMap((D) => [1, 2, 4].flatMap((ratio) => [16, 4].map((blockSize) => [D, ratio, blockSize])))
  it.each(cases)("paged_attention D=%i GQA ratio %i block size %i, after kv_write", (D, ratio, blockSize) => {
    const Hkv = 2
    const Hq = Hkv * ratio
    const stride = (Hq + 2 * Hkv) * D
    const scale = 1 / Math.sqrt(D)
    const qkv = uniform(T * stride, 21 + D + ratio)
    const { table, maxBlocks, numBlocks } = blockTables(blockSize)
    const slotFloats = Hkv * D
    // earlier tokens' keys and values, and garbage in every slot nobody owns
    const kCache = uniform(numBlocks * blockSize * slotFloats, 22)
    const vCache = uniform(numBlocks * blockSize * slotFloats, 23)
    const slots = Int32Array.from(positions, (pos, t) => slotOf(table, maxBlocks, blockSize, queryToSeq[t], pos))

    const [out] = onBoth((p) => {
      const s = scope(p)
      const [kc, vc, q, o] = [s.put(kCache), s.put(vCache), s.put(qkv), s.put(new Float32Array(T * Hq * D))]
      const [qPtr, kPtr, vPtr] = [q, q + Hq * D * 4, q + (Hq + Hkv) * D * 4]
      p.kernels.kv_write(kc, vc, kPtr, vPtr, s.put(slots), T, Hkv, D, stride, stride)
      p.kernels.paged_attention(o, qPtr, kc, vc, s.put(queryToSeq), s.put(positions), s.put(table), T, Hq, Hkv, D, stride, maxBlocks, blockSize, scale, T)
      const result = s.get(o, new Float32Array(T * Hq * D))
      s.free()
      return [result]
    })

    // the reference cache: the same writes, done on the host
    slots.forEach((slot, t) => {
      kCache.set(qkv.subarray(t * stride + Hq * D, t * stride + (Hq + Hkv) * D), slot * slotFloats)
      vCache.set(qkv.subarray(t * stride + (Hq + Hkv) * D, (t + 1) * stride), slot * slotFloats)
    })
    const ref = new Float64Array(T * Hq * D)
    const bound = new Float64Array(T * Hq * D)
    for (let t = 0; t < T; t++)
      for (let h = 0; h < Hq; h++) {
        const q = qkv.subarray(t * stride + h * D, t * stride + (h + 1) * D)
        const g = Math.floor(h / ratio)
        const n = positions[t] + 1
        const keyAt = (j: number) => (slotOf(table, maxBlocks, blockSize, queryToSeq[t], j) * Hkv + g) * D
        const scores = Array.from({ length: n }, (_, j) => q.reduce((acc, qi, i) => acc + qi * kCache[keyAt(j) + i], 0) * scale)
        const absScores = Array.from({ length: n }, (_, j) => q.reduce((acc, qi, i) => acc + Math.abs(qi * kCache[keyAt(j) + i]), 0) * scale)
        const top = Math.max(...scores)
        const weights = scores.map((sc) => Math.exp(sc - top))
        const sum = weights.reduce((a, b) => a + b)
        let maxV = 0
        for (let j = 0; j < n; j++)
          for (let i = 0; i < D; i++) {
            ref[(t * Hq + h) * D + i] += (weights[j] / sum) * vCache[keyAt(j) + i]
            maxV = Math.max(maxV, Math.abs(vCache[keyAt(j) + i]))
          }
        // a score is off by at most chain·u·Σ|q·k|·scale, which moves a softmax weight by that
        // much relatively, twice (its own and the max's); exp, the running sum and the output
        // accumulation over n keys each add ~n roundings relative to max|v|
        const scoreError = (chain(D) + 2) * u * Math.max(...absScores)
        bound.fill(maxV * (4 * scoreError + (3 * n + 16) * u), (t * Hq + h) * D, (t * Hq + h + 1) * D)
      }
    expectWithin(out, ref, (i) => bound[i])
  })
})

describe("kernel threads", () => {
  it("report a kernel that traps on a thread, and keep working", () => {
    const H = 16
    const s = scope(split)
    const [x, out] = [s.put(uniform(2 * H, 24)), s.put(new Float32Array(2 * H))]
    // row 1 (the second thread's part) reads 1 GiB in, past the end of the 64 MiB memory
    const indices = s.put(Int32Array.of(0, 2 ** 24))
    expect(() => split.kernels.gather_rows(out, x, indices, 2, H)).toThrow(/kernel thread 1 failed: .*RuntimeError/)
    split.kernels.gather_rows(out, x, s.put(Int32Array.of(1, 0)), 2, H)
    expect(s.get(out, new Float32Array(H))).toEqual(s.get(x + H * 4, new Float32Array(H)))
    s.free()
  })
})
