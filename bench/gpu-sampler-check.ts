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
 * About half the rows also carry logits processors, applied on the device as edits
 * (src/sampling/logitsEdits.ts): logit bias, min_tokens masking of stop ids, a repetition
 * penalty over a prompt and an output history, frequency and presence penalties.
 *
 * The bf16 batches also check tsr_logprobs_rows_bf16 (cuda/logprobs.cu) against computeLogprobs
 * (src/sampling/logprobs.ts) for each row's drawn token, with 20 top tokens: the same ranks and
 * top ids, log-probabilities within 1e-9 (both sum exp() in float64, in different orders).
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
import { logitsEdits } from "../src/sampling/logitsEdits.ts"
import { makeSamplingState, recordOutputToken, type SequenceSamplingState } from "../src/sampling/samplingState.ts"
import { computeLogprobs, rowTokenLogprobs, type TokenLogprobs } from "../src/sampling/logprobs.ts"

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
  /** logits processors: the request's fields and the history they act on */
  processors?: {
    logitBias: Record<string, number>
    presencePenalty: number
    frequencyPenalty: number
    repetitionPenalty: number
    minTokens: number
    stopTokenIds: number[]
    prompt: number[]
    outputs: number[]
  }
}
const randomIds = (count: number, V: number): number[] => Array.from({ length: count }, () => Math.floor(rand() * V))
const randomProcessors = (V: number): RowParams["processors"] => {
  if (rand() < 0.5) return undefined
  const outputs = randomIds(pick([0, 3, 40]), pick([V, 20]))  // a narrow range repeats ids: counts above 1
  return {
    logitBias: Object.fromEntries(randomIds(pick([0, 1, 5]), V).map((id) => [String(id), pick([-100, -5, 0.5, 3, 100])])),
    presencePenalty: pick([0, 0, 0.5, -1, 2]),
    frequencyPenalty: pick([0, 0, 0.3, -0.7, 1.1]),
    repetitionPenalty: pick([1, 1, 1.1, 1.3, 0.8]),
    minTokens: pick([0, 0, outputs.length + 1]),
    stopTokenIds: randomIds(pick([0, 2]), V),
    prompt: randomIds(pick([0, 10, 500]), V),
    outputs
  }
}
const randomParams = (V: number): RowParams => ({
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
  kind: pick(["gauss", "gauss", "quantized", "peaked", "masked"] as const),
  processors: randomProcessors(V)
})

/** the engine's state for a row: its request's parameters, prompt and outputs so far */
const stateOf = (p: RowParams): SequenceSamplingState => {
  const x = p.processors
  const params = decodeSamplingParamsSync({
    temperature: p.temperature, top_p: p.topP, top_k: p.topK, min_p: p.minP, seed: p.seed,
    ...(x && {
      logit_bias: x.logitBias, presence_penalty: x.presencePenalty, frequency_penalty: x.frequencyPenalty,
      repetition_penalty: x.repetitionPenalty, min_tokens: x.minTokens, stop_token_ids: x.stopTokenIds
    })
  })
  const state = makeSamplingState(params, { promptTokenIds: x?.prompt ?? [], eosTokenIds: [], seed: p.seed, sampleIndex: p.sampleIndex })
  for (const id of x?.outputs ?? []) recordOutputToken(state, id)
  return state
}

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

// logprobs rows compared, and the first that differ
const kTopLogprobs = 20
let logprobRows = 0
let logprobBad = 0
const logprobMismatches: Array<{ vocab: number; row: number; cpu: TokenLogprobs; gpu: TokenLogprobs }> = []
// a row whose logits are all -inf has NaN logprobs on both sides (exp(-inf - -inf))
const sameLogprob = (a: number, b: number) => (Number.isFinite(a) ? Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a)) : Object.is(a, b))
const sameLogprobs = (a: TokenLogprobs, b: TokenLogprobs) =>
  a.rank === b.rank && sameLogprob(a.logprob, b.logprob) && a.top.length === b.top.length &&
  a.top.every((t, j) => t.tokenId === b.top[j].tokenId && sameLogprob(t.logprob, b.top[j].logprob))

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
const perVocab: { vocab: number; rows: number; mismatches: number; sampledRows: number; processedRows: number; gpuMs: number; cpuMs: number }[] = []
let totalRows = 0
for (const c of cases) {
  const V = c.vocab
  const R = c.rows
  const cpu = new Sampler(V)
  let rowsDone = 0
  let bad = 0
  let sampledRows = 0
  let processedRows = 0
  let gpuMs = 0
  let cpuMs = 0
  for (let b = 0; b < Math.max(1, Math.round(c.batches * rowsScale)); b++) {
    const logits = new Float32Array(R * V)
    const ps = Array.from({ length: R }, () => randomParams(V))
    const states = ps.map(stateOf)
    const edits = logitsEdits(states, R)
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
      editOffsets: edits ? upload(edits.offsets) : 0,
      editIds: edits ? upload(edits.ids) : 0,
      editValues: edits ? upload(edits.values) : 0,
      outTokens: alloc(R * 4)
    }
    const t0 = performance.now()
    ;(bf16 ? sampler.sampleRowsBf16 : sampler.sampleRows)(ctx, { ...buffers, rows: R, vocab: V })
    native.check("tsr_synchronize", s.tsr_synchronize(ctx))
    gpuMs += performance.now() - t0
    const gpuTokens = new Int32Array(R)
    native.check("tsr_read", s.tsr_read(ctx, gpuTokens, buffers.outTokens as Pointer, gpuTokens.byteLength))
    if (bf16) {
      const N = kTopLogprobs
      const out = { logprob: alloc(8 * R), rank: alloc(4 * R), topIds: alloc(4 * R * N), topLogprobs: alloc(8 * R * N) }
      sampler.logprobsRowsBf16(ctx, {
        logits: buffers.logits, rows: R, vocab: V, tokens: buffers.outTokens, numTop: N,
        outLogprob: out.logprob, outRank: out.rank, outTopIds: out.topIds, outTopLogprobs: out.topLogprobs
      })
      native.check("tsr_synchronize", s.tsr_synchronize(ctx))
      const rows = { numTop: N, logprob: new Float64Array(R), rank: new Int32Array(R), topIds: new Int32Array(R * N), topLogprobs: new Float64Array(R * N) }
      native.check("tsr_read", s.tsr_read(ctx, rows.logprob, out.logprob as Pointer, rows.logprob.byteLength))
      native.check("tsr_read", s.tsr_read(ctx, rows.rank, out.rank as Pointer, rows.rank.byteLength))
      native.check("tsr_read", s.tsr_read(ctx, rows.topIds, out.topIds as Pointer, rows.topIds.byteLength))
      native.check("tsr_read", s.tsr_read(ctx, rows.topLogprobs, out.topLogprobs as Pointer, rows.topLogprobs.byteLength))
      for (const ptr of Object.values(out)) native.check("tsr_free", s.tsr_free(ctx, ptr as Pointer))
      const scratch = new Int32Array(N)
      for (let r = 0; r < R; r++) {
        const cpuRow = computeLogprobs(logits, r, V, gpuTokens[r], N, scratch)
        const gpuRow = rowTokenLogprobs(rows, r, gpuTokens[r], N)
        logprobRows++
        if (sameLogprobs(cpuRow, gpuRow)) continue
        logprobBad++
        if (logprobMismatches.length < 20) logprobMismatches.push({ vocab: V, row: rowsDone + r, cpu: cpuRow, gpu: gpuRow })
      }
    }
    for (const ptr of Object.values(buffers)) if (ptr !== 0) native.check("tsr_free", s.tsr_free(ctx, ptr as Pointer))
    const t1 = performance.now()
    ps.forEach((p, r) => {
      const state = states[r]
      if (!state.greedy) sampledRows++
      if (p.processors) processedRows++
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
  perVocab.push({ vocab: V, rows: rowsDone, mismatches: bad, sampledRows, processedRows, gpuMs: Math.round(gpuMs), cpuMs: Math.round(cpuMs) })
  console.log(
    `vocab ${V}: ${rowsDone} rows (${sampledRows} sampled, the rest greedy; ${processedRows} with logits processors), ${bad} mismatches; GPU ${gpuMs.toFixed(0)} ms, CPU ${cpuMs.toFixed(0)} ms`
  )
}
native.check("tsr_context_destroy", s.tsr_context_destroy(ctx))

const totalMismatches = perVocab.reduce((a, v) => a + v.mismatches, 0) + logprobBad
console.log(`rows compared: ${totalRows}, mismatches: ${totalMismatches - logprobBad}`)
console.log(`logprobs rows compared (${kTopLogprobs} top tokens each): ${logprobRows}, mismatches: ${logprobBad}`)
for (const m of logprobMismatches.slice(0, 3)) console.log(`  logprobs mismatch ${JSON.stringify(m).slice(0, 600)}`)
for (const m of mismatches.slice(0, 10)) console.log(`  mismatch ${JSON.stringify(m)}`)
mkdirSync(outDir, { recursive: true })
const file = join(outDir, `gpu-sampler-check-${deviceSlug(device)}.json`)
writeFileSync(
  file,
  `${JSON.stringify({ device, command: `bun bench/gpu-sampler-check.ts ${process.argv.slice(2).join(" ")}`.trim(), commit: commit(), date: new Date().toISOString(), results: { rows: totalRows, mismatches: totalMismatches, perVocab, firstMismatches: mismatches, logprobs: { rows: logprobRows, topTokens: kTopLogprobs, mismatches: logprobBad, first: logprobMismatches } } }, null, 2)}\n`
)
console.log(`wrote ${file}`)
process.exit(totalMismatches === 0 ? 0 : 1)
