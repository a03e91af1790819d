/**
 * The GPU sampler (cuda/sampler.cu, tsr_sample_rows) against the CPU one
 * (src/sampling/sampler.ts): for random logits rows of several vocabulary sizes and random
 * sampling parameters, the token each draws must be the same, bit for bit in the id. The CPU
 * side builds its state as the engine does (decodeSamplingParamsSync + makeSamplingState, with
 * the request's seed and sample index) and samples at the same position.
 *
 * Rows mix greedy and near-greedy temperatures, top-k (1 to 1000, and off), top-p (0.1 to 1),
 * min-p (0 to 0.2), seeds (negative and beyond 2^32 too), positions and sample indices, over
 * logits that are Gaussian at several scales, quantized to a few levels (many exact ties, the
 * quickselect's tie path), peaked, or partly -inf (as logit bias / min_tokens masking leave them).
 *
 *   make -C cuda && bun bench/gpu-sampler-check.ts [--out DIR] [--rows-scale N]
 *   (writes gpu-sampler-check-<device>.json; exit 1 on any mismatch)
 */
import type { Pointer } from "bun:ffi"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { commit, deviceSlug } from "./lib/results.ts"
import { openSampler } from "../ffi/sampling.ts"
import { roundBf16 } from "./gpu-check-kernels.ts"
import { seedKey } from "../src/sampling/philox.ts"
import { Sampler } from "../src/sampling/sampler.ts"
import { decodeSamplingParamsSync } from "../src/sampling/SamplingParams.ts"
import { makeSamplingState } from "../src/sampling/samplingState.ts"

const argValue = (flag: string): string | undefined => {
  const i = process.argv.indexOf(flag)
  return i >= 0 ? process.argv[i + 1] : undefined
}
const outDir = argValue("--out") ?? process.env.OUT ?? join(process.cwd(), "bench", "results")
const rowsScale = Number(argValue("--rows-scale") ?? 1)

// a small deterministic PRNG (mulberry32), so a failing case can be replayed
let rngState = 0x5eed1234
const rand = (): number => {
  rngState = (rngState + 0x6d2b79f5) >>> 0
  let t = rngState
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]
const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand())

type Kind = "gauss" | "quantized" | "peaked" | "masked"
const fillRow = (row: Float32Array, kind: Kind): void => {
  const V = row.length
  const scale = pick([0.5, 1, 2, 4, 10])
  for (let i = 0; i < V; i++) row[i] = gauss() * scale
  if (kind === "quantized") for (let i = 0; i < V; i++) row[i] = Math.round(row[i] * 2) / 2
  if (kind === "peaked") for (let j = 0; j < 5; j++) row[Math.floor(rand() * V)] += 10 + rand() * 10
  if (kind === "masked") {
    const keep = pick([0.5, 0.01, 0.001])
    for (let i = 0; i < V; i++) if (rand() > keep) row[i] = Number.NEGATIVE_INFINITY
  }
}

interface RowParams {
  temperature: number
  topP: number
  topK: number
  minP: number
  seed: number
  position: number
  sampleIndex: number
  kind: Kind
}
const randomParams = (): RowParams => ({
  temperature: pick([0, 0, 1e-6, 0.1, 0.3, 0.6, 0.7, 0.8, 1, 1, 1, 1.3, 2]),
  topP: pick([1, 1, 0.95, 0.9, 0.8, 0.5, 0.1]),
  topK: pick([-1, -1, -1, 1, 2, 5, 20, 50, 1000]),
  minP: pick([0, 0, 0, 0.01, 0.05, 0.2]),
  seed: pick([
    () => Math.floor(rand() * 2 ** 32),
    () => Math.floor(rand() * 2 ** 53),
    () => -Math.floor(rand() * 2 ** 40),
    () => 0,
    () => 42
  ])(),
  position: pick([() => Math.floor(rand() * 64), () => Math.floor(rand() * 2 ** 20), () => 2 ** 31 - 1])(),
  sampleIndex: pick([0, 0, 1, 3]),
  kind: pick(["gauss", "gauss", "quantized", "peaked", "masked"] as const)
})

/** rounds `values` to bf16 in place (nearest even) and returns the bit patterns */
const roundToBf16 = (values: Float32Array): Uint16Array =>
  Uint16Array.from(new Uint32Array(roundBf16(values).buffer, values.byteOffset, values.length), (w) => w >>> 16)

const sampler = openSampler()
const { native } = sampler
const s = native.symbols
const out64 = new BigUint64Array(1)
native.check("tsr_context_create", s.tsr_context_create(0, out64))
const ctx = Number(out64[0]) as Pointer
const nameBytes = new Uint8Array(256)
native.check("tsr_device_name", s.tsr_device_name(ctx, nameBytes, nameBytes.length))
const device = new TextDecoder().decode(nameBytes.subarray(0, nameBytes.indexOf(0)))
console.log(`device: ${device}`)

const alloc = (bytes: number): number => {
  native.check("tsr_malloc", s.tsr_malloc(ctx, out64, Math.max(bytes, 4)))
  return Number(out64[0])
}
const upload = (data: Float32Array | Float64Array | Int32Array | Uint32Array | Uint16Array): number => {
  const ptr = alloc(data.byteLength)
  native.check("tsr_write", s.tsr_write(ctx, ptr as Pointer, data, data.byteLength))
  return ptr
}

interface Mismatch extends RowParams {
  vocab: number
  row: number
  cpu: number
  gpu: number
}
const cases = [
  { vocab: 1000, batches: 4, rows: 128 },
  { vocab: 32000, batches: 4, rows: 64 },
  { vocab: 50257, batches: 2, rows: 64 },
  { vocab: 128256, batches: 6, rows: 64 }
]
const mismatches: Mismatch[] = []
const perVocab: { vocab: number; rows: number; mismatches: number; sampledRows: number; gpuMs: number; cpuMs: number }[] = []
let totalRows = 0
for (const c of cases) {
  const V = c.vocab
  const R = c.rows
  const cpu = new Sampler(V)
  let rowsDone = 0
  let bad = 0
  let sampledRows = 0
  let gpuMs = 0
  let cpuMs = 0
  for (let b = 0; b < Math.max(1, Math.round(c.batches * rowsScale)); b++) {
    const logits = new Float32Array(R * V)
    const ps = Array.from({ length: R }, randomParams)
    ps.forEach((p, r) => fillRow(logits.subarray(r * V, (r + 1) * V), p.kind))
    // every other batch goes through the bf16 entry, as the engine's logits do: the CPU then
    // samples the same logits rounded to bf16
    const bf16 = b % 2 === 1
    const bits = bf16 ? roundToBf16(logits) : undefined
    const keys = ps.map((p) => seedKey(p.seed))
    const buffers = {
      logits: upload(bits ?? logits),
      temperature: upload(Float64Array.from(ps, (p) => p.temperature)),
      topP: upload(Float64Array.from(ps, (p) => p.topP)),
      topK: upload(Int32Array.from(ps, (p) => p.topK)),
      minP: upload(Float64Array.from(ps, (p) => p.minP)),
      seedLo: upload(Uint32Array.from(keys, (k) => k[0])),
      seedHi: upload(Uint32Array.from(keys, (k) => k[1])),
      position: upload(Int32Array.from(ps, (p) => p.position)),
      sampleIndex: upload(Int32Array.from(ps, (p) => p.sampleIndex)),
      outTokens: alloc(R * 4)
    }
    const t0 = performance.now()
    ;(bf16 ? sampler.sampleRowsBf16 : sampler.sampleRows)(ctx, { ...buffers, rows: R, vocab: V })
    native.check("tsr_synchronize", s.tsr_synchronize(ctx))
    gpuMs += performance.now() - t0
    const gpuTokens = new Int32Array(R)
    native.check("tsr_read", s.tsr_read(ctx, gpuTokens, buffers.outTokens as Pointer, gpuTokens.byteLength))
    for (const ptr of Object.values(buffers)) native.check("tsr_free", s.tsr_free(ctx, ptr as Pointer))
    const t1 = performance.now()
    ps.forEach((p, r) => {
      const params = decodeSamplingParamsSync({ temperature: p.temperature, top_p: p.topP, top_k: p.topK, min_p: p.minP, seed: p.seed })
      const state = makeSamplingState(params, { promptTokenIds: [], eosTokenIds: [], seed: p.seed, sampleIndex: p.sampleIndex })
      if (!state.greedy) sampledRows++
      const token = cpu.sample(logits, r, state, p.position)
      if (token !== gpuTokens[r]) {
        bad++
        if (mismatches.length < 50) mismatches.push({ ...p, vocab: V, row: rowsDone + r, cpu: token, gpu: gpuTokens[r] })
      }
    })
    cpuMs += performance.now() - t1
    rowsDone += R
  }
  totalRows += rowsDone
  perVocab.push({ vocab: V, rows: rowsDone, mismatches: bad, sampledRows, gpuMs: Math.round(gpuMs), cpuMs: Math.round(cpuMs) })
  console.log(`vocab ${V}: ${rowsDone} rows (${sampledRows} sampled, the rest greedy), ${bad} mismatches; GPU ${gpuMs.toFixed(0)} ms, CPU ${cpuMs.toFixed(0)} ms`)
}
native.check("tsr_context_destroy", s.tsr_context_destroy(ctx))

const totalMismatches = perVocab.reduce((a, v) => a + v.mismatches, 0)
console.log(`rows compared: ${totalRows}, mismatches: ${totalMismatches}`)
for (const m of mismatches.slice(0, 10)) console.log(`  mismatch ${JSON.stringify(m)}`)
mkdirSync(outDir, { recursive: true })
const file = join(outDir, `gpu-sampler-check-${deviceSlug(device)}.json`)
writeFileSync(
  file,
  `${JSON.stringify({ device, command: `bun bench/gpu-sampler-check.ts ${process.argv.slice(2).join(" ")}`.trim(), commit: commit(), date: new Date().toISOString(), results: { rows: totalRows, mismatches: totalMismatches, perVocab, firstMismatches: mismatches } }, null, 2)}\n`
)
console.log(`wrote ${file}`)
process.exit(totalMismatches === 0 ? 0 : 1)
