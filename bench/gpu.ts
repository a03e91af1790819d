/**
 * Tessera against its peers on one GPU, in one run, on the Llama-3-8B shape (hidden 4096, 32
 * layers, 32 heads / 8 KV heads, intermediate 14336, vocab 128256, bf16) with random weights
 * made on the device (`--load-format dummy`):
 *   - correctness first: the fixture models through every decode mode (gpu-check-models.ts);
 *   - ours: decode ms/step and tokens/s at batch 1/16/64/256 (prompt 128, 256 new tokens) in each
 *     decode mode (eager: the executor as it was; pinned: plan and logits through pinned memory;
 *     graphs: pinned and one CUDA graph replay per step), the device-busy share of a decode step
 *     (CUDA events around each step's device work over wall time), prefill of 1k/4k/8k prompts;
 *   - ceilings: roofline.py (read bandwidth, bf16 GEMM rate), plus our own copy and GEMM;
 *   - peers: hf_generate.py (transformers eager and static-cache compiled generate).
 * Writes gpu-<device>.json into --out and prints the table.
 *
 *   bun bench/gpu.ts [--out DIR] [--peers DIR] [--hf-modes eager,static] [--hf-batch 1,64]
 *                    [--hf-timeout S | --hf-deadline EPOCH_S] [--batches 1,16,64,256] [--modes graphs] [--variants argmax,logits,sampled,logprobs] [--steps 256]
 *                    [--prefill 1024,4096,8192] [--no-check] [--no-peers]
 * TSR_DECODE_SPLIT=0 turns flash-decoding off (cuda/attention_decode.cuh), for before/after runs;
 * TSR_ASYNC_SCHEDULING=0 launches each decode step only once the one before is read.
 *
 * A decode step is the executor's as the engine runs it for greedy requests: the forward pass,
 * the argmax of every row on the device and the ids back on the host (`hostLogits: false`), each
 * launched before the step before is read, its ids taken on the device (asynchronous
 * scheduling). `--variants` adds the same steps with the f32 logits of every row copied back too,
 * as a step whose rows are sampled on the host does ("logits": modes "<mode>+logits", step after
 * step), with every row drawn on the device at temperature 1, seeded ("sampled": "<mode>+sampled"),
 * or with every row's logprobs and 5 most likely tokens made on the device ("logprobs"). The
 * tokens fed back are each row's own argmax or draw where steps are launched ahead (as the engine
 * feeds them), else fixed pseudo-random ids: with random weights no token is more right than
 * another, and the contexts' lengths, which set the work, are the same either way.
 */
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { loadModelExecutor } from "../src/engine/modelExecutor.ts"
import { cudaDecodeRunner, type DecodeMode, type DecodeRunner } from "../src/kernels/cuda/decodeRunner.ts"
import { deviceDummyWeights } from "../src/kernels/cuda/dummyWeights.ts"
import { createCudaProvider } from "../src/kernels/cuda/provider.ts"
import { readModelConfig } from "../src/model/config.ts"
import type { RowSampling, StepPlan } from "../src/stages/stepPlan.ts"
import { timeOnDevice } from "./lib/gpuTiming.ts"
import { checkModel, fixtureNames, type LogitError } from "./gpu-check-models.ts"
import { commit, deviceSlug } from "./lib/results.ts"
import { llama3_8bConfig, writeBenchModel } from "./lib/dummyModel.ts"
import { printTable, type GpuBench } from "./gpu-table.ts"

const argValue = (flag: string, fallback: string): string => {
  const i = process.argv.indexOf(flag)
  return i >= 0 ? process.argv[i + 1] : fallback
}
const list = (flag: string, fallback: string) => argValue(flag, fallback).split(",").filter(Boolean)
const outDir = argValue("--out", process.env.OUT ?? join(process.cwd(), "bench", "results"))
const peersDir = argValue("--peers", join(process.cwd(), ".device-carry", "peers"))
const batches = list("--batches", "1,16,64,256").map(Number)
const modes = list("--modes", "graphs") as DecodeMode[]
type Variant = "argmax" | "logits" | "sampled" | "logprobs"
const variants = list("--variants", "argmax") as Variant[]
const steps = Number(argValue("--steps", "256"))
const prompt = 128
const prefills = list("--prefill", "1024,4096,8192").map(Number)
const decodeSplit = process.env.TSR_DECODE_SPLIT !== "0"
// TSR_ASYNC_SCHEDULING=0: every decode step planned and launched once the one before is read
const asyncScheduling = process.env.TSR_ASYNC_SCHEDULING !== "0"

const llama3_8b = llama3_8bConfig
const L = llama3_8b.num_hidden_layers, H = llama3_8b.hidden_size, V = llama3_8b.vocab_size, I = llama3_8b.intermediate_size
const [Hq, Hkv, D] = [llama3_8b.num_attention_heads, llama3_8b.num_key_value_heads, H / llama3_8b.num_attention_heads]
const layerParams = H * (Hq + 2 * Hkv) * D + Hq * D * H + 3 * H * I + 2 * H
/** bytes a decode step must read: every layer, the final norm and lm_head (the embedding is gathered) */
const weightBytes = 2 * (L * layerParams + H + V * H)
/** bytes of K and V per token of context, all layers */
const kvBytesPerToken = 2 * L * Hkv * D * 2
const blockSize = 16

const log = (line: string) => console.log(`[gpu] ${line}`)
const gpu = await createCudaProvider()
log(`device ${gpu.device}`)

// ---- correctness first: the fixtures through every decode mode ----
// transformers' own bf16 error per fixture, as gpu-check.ts recorded it on this device: the bound where it exceeds 2e-2
const slug = deviceSlug(gpu.device)
const recordedCheck = join(process.cwd(), "bench", "results", `gpu-check-${slug}.json`)
const hfBf16 = new Map<string, LogitError>(
  existsSync(recordedCheck)
    ? (JSON.parse(readFileSync(recordedCheck, "utf8")).results.models as Array<{ fixture: string; hfBf16?: LogitError }>).flatMap((m) => (m.hfBf16 ? [[m.fixture, m.hfBf16] as const] : []))
    : []
)
const correctness: Array<{ fixture: string; mode: DecodeMode; pass: boolean; detail: string }> = []
for (const mode of process.argv.includes("--no-check") ? [] : modes) {
  for (const name of fixtureNames()) {
    const result = await checkModel(gpu, name, hfBf16.get(name), { stepRunner: cudaDecodeRunner(gpu, mode) }).catch((error: unknown) => ({
      pass: false,
      error: error instanceof Error ? error.message : String(error)
    }))
    const detail = "greedy" in result
      ? `logits ${result.firstLogits.normwise.toExponential(2)} (bound ${result.firstLogits.bound.toExponential(2)}) greedy ${result.greedy.matched}/${result.greedy.steps} long ${result.long.matched}/${result.long.steps} batched ${result.batched.first.matched}+${result.batched.long.matched}/16 leaked ${result.leakedBytes}`
      : String(result.error)
    correctness.push({ fixture: name, mode, pass: result.pass, detail })
    log(`check ${mode.padEnd(6)} ${name.padEnd(8)} ${result.pass ? "ok  " : "FAIL"} ${detail}`)
  }
}

// ---- our ceilings, measured through the provider ----
const { kernels, memory } = gpu
const timeGpu = (fn: () => void, iters: number): number => timeOnDevice(gpu, fn, iters)
const randomTensor = (n: number, seed: number): number => {
  const ptr = memory.alloc(n * 2)
  memory.fill(ptr, { rows: 1, cols: n, width: n, first: 0, seed, offset: 0, scale: 1 })
  return ptr
}
const copyN = 1 << 30
const [copySrc, copyDst] = [randomTensor(copyN, 1), memory.alloc(copyN * 2)]
const copyBytesPerSecond = (4 * copyN) / (timeGpu(() => kernels.copy(copyDst, copySrc, copyN), 10) / 1e3)
memory.free(copySrc)
memory.free(copyDst)
const G = 8192
const [ga, gb, gc] = [randomTensor(G * G, 2), randomTensor(G * G, 3), memory.alloc(G * G * 2)]
const gemmFlopsPerSecond = (2 * G ** 3) / (timeGpu(() => kernels.matmul(gc, ga, gb, G, G, G), 20) / 1e3)
for (const ptr of [ga, gb, gc]) memory.free(ptr)
log(`ceilings: copy ${(copyBytesPerSecond / 1e12).toFixed(2)} TB/s (read + write), GEMM ${(gemmFlopsPerSecond / 1e12).toFixed(0)} TFLOP/s`)

// ---- ours on the Llama-3-8B shape ----
const dir = writeBenchModel(llama3_8b)
const maxSeqs = Math.max(...batches)
const blocksPerSeq = Math.ceil((prompt + steps) / blockSize)
const numBlocks = Math.max(maxSeqs * blocksPerSeq, Math.ceil(Math.max(0, ...prefills) / blockSize))
let runner: DecodeRunner | undefined
const loadStart = performance.now()
const executor = await loadModelExecutor(dir, {
  provider: gpu,
  loadFormat: "dummy",
  weights: deviceDummyWeights(readModelConfig(dir), memory),
  numBlocks,
  blockSize,
  maxNumSeqs: maxSeqs,
  maxModelLen: 8192,
  maxNumBatchedTokens: Math.max(8192, ...prefills),
  stepRunner: (parts) => (runner = cudaDecodeRunner(gpu, "eager")(parts))
})
gpu.synchronize()
const loadSeconds = (performance.now() - loadStart) / 1e3
log(`loaded ${(memory.usedBytes / 2 ** 30).toFixed(1)} GiB on the device in ${loadSeconds.toFixed(1)} s (${numBlocks} KV blocks)`)
if (!runner) throw new Error("the executor did not create its step runner")
const decodeRunner: DecodeRunner = runner

/** a plan of `tokens[i]` for sequences firstSeq + i, each owning blocks [s * blocksPerSeq, (s + 1) * blocksPerSeq) */
const planOf = (firstSeq: number, tokens: number[][], computed: number[], perSeq: number): StepPlan => {
  const T = tokens.reduce((n, t) => n + t.length, 0)
  const [tokenIds, positions, slotMapping, queryToSeq] = [new Int32Array(T), new Int32Array(T), new Int32Array(T), new Int32Array(T)]
  const blockTables = new Int32Array(tokens.length * perSeq)
  const sampleRows = new Int32Array(tokens.length)
  let t = 0
  tokens.forEach((seqTokens, s) => {
    for (let b = 0; b < perSeq; b++) blockTables[s * perSeq + b] = (firstSeq + s) * perSeq + b
    seqTokens.forEach((token, j) => {
      const position = computed[s] + j
      ;[tokenIds[t], positions[t], queryToSeq[t]] = [token, position, s]
      slotMapping[t] = blockTables[s * perSeq + Math.floor(position / blockSize)] * blockSize + (position % blockSize)
      t++
    })
    sampleRows[s] = t - 1
  })
  const seqs = tokens.map((seqTokens, s) => ({ requestId: `seq-${firstSeq + s}`, numComputedTokens: computed[s], numScheduledTokens: seqTokens.length, sample: true }))
  return { seqs, tokenIds, positions, slotMapping, queryToSeq, blockTables, maxBlocksPerSeq: perSeq, sampleRows }
}
const run = (plan: StepPlan) => Effect.runPromise(executor.execute(plan))
/** every row drawn at temperature 1 (OpenAI's default), its own seed */
const temperatureOne = (batch: number): RowSampling => ({
  temperature: new Float64Array(batch).fill(1), topP: new Float64Array(batch).fill(1), topK: new Int32Array(batch), minP: new Float64Array(batch),
  seedLo: Uint32Array.from({ length: batch }, (_, s) => 1000 + s), seedHi: new Uint32Array(batch),
  position: new Int32Array(batch).fill(prompt), sampleIndex: new Int32Array(batch)
})
const token = (s: number, step: number) => 3 + ((((s * 7919 + step * 104729) % (V - 3)) + (V - 3)) % (V - 3))

interface DecodeRow {
  readonly batch: number
  /** the decode mode, "+logits" when every row's logits came back to the host */
  readonly mode: string
  readonly msPerStep: number
  readonly medianMs: number
  readonly tokensPerSecond: number
  /** device time of the steps (events) over their wall time, the capture step excluded */
  readonly deviceBusy?: number
}
const decode: DecodeRow[] = []
const failures: string[] = []
for (const batch of batches) {
  for (const [mode, variant] of modes.flatMap((m) => variants.map((v) => [m, v] as const))) {
    const label = variant === "argmax" ? mode : `${mode}+${variant}`
    const sampling = variant === "sampled" ? temperatureOne(batch) : undefined
    try {
      decodeRunner.mode = mode
      // prefill the prompts, at most 8192 tokens a step (not timed)
      const per = Math.max(1, Math.floor(8192 / prompt))
      for (let s0 = 0; s0 < batch; s0 += per) {
        const group = Array.from({ length: Math.min(per, batch - s0) }, (_, i) => Array.from({ length: prompt }, (_, j) => token(s0 + i, -1 - j)))
        await run(planOf(s0, group, group.map(() => 0), blocksPerSeq))
      }
      decodeRunner.timing = mode !== "eager"
      const planAt = (step: number): StepPlan => ({
        ...planOf(0, Array.from({ length: batch }, (_, s) => [token(s, step)]), Array.from({ length: batch }, () => prompt + step), blocksPerSeq),
        hostLogits: variant === "logits",
        ...(variant === "logprobs" && { logprobs: 5 }),
        ...(sampling && { sampling: { ...sampling, position: sampling.position.map((p) => p + step) } })
      })
      // A step's time is from the previous step's output on the host to its own (the first's from
      // its launch). Step after step, each is planned and launched once the one before is read.
      // With asynchronous scheduling (the engine's, where every row's token stays on the device:
      // not the "logits" variant), each is launched before the one before is read, its ids taken on
      // the device from that one's argmax or draw.
      const ahead = asyncScheduling && variant !== "logits" && mode !== "eager"
      const fromPrevious = Int32Array.from({ length: batch }, (_, s) => (variant === "sampled" ? -2 - s : s))
      const times: number[] = []
      // device time of the steps after the first (whose capture is left out, as its wall time is)
      let deviceAfterFirst = 0
      let last = performance.now()
      const finished = () => {
        const now = performance.now()
        times.push(now - last)
        last = now
        if (times.length === 1) deviceAfterFirst = decodeRunner.stats.deviceMs
      }
      let pending: Effect.Effect<unknown, unknown> | undefined
      for (let step = 0; step < steps; step++) {
        if (!ahead) {
          await run(planAt(step))
          finished()
          continue
        }
        const wait = await Effect.runPromise(executor.launch!({ ...planAt(step), ...(step > 0 && { previousTokens: fromPrevious }) }))
        if (pending) {
          await Effect.runPromise(pending)
          finished()
        }
        pending = wait
      }
      if (pending) {
        await Effect.runPromise(pending)
        finished()
      }
      const deviceMs = decodeRunner.stats.deviceMs - deviceAfterFirst
      decodeRunner.timing = false
      const timed = times.slice(1)
      const mean = timed.reduce((a, b) => a + b, 0) / timed.length
      const median = [...timed].sort((a, b) => a - b)[Math.floor(timed.length / 2)]
      const row: DecodeRow = {
        batch, mode: label, msPerStep: mean, medianMs: median, tokensPerSecond: (batch * 1e3) / mean,
        ...(mode !== "eager" ? { deviceBusy: deviceMs / timed.reduce((a, b) => a + b, 0) } : {})
      }
      decode.push(row)
      log(`decode batch ${batch} ${label.padEnd(13)} ${mean.toFixed(3)} ms/step (median ${median.toFixed(3)}), ${row.tokensPerSecond.toFixed(0)} tok/s` +
        (row.deviceBusy !== undefined ? `, device busy ${(100 * row.deviceBusy).toFixed(1)}%` : "") + `; first step ${times[0].toFixed(1)} ms`)
    } catch (error) {
      decodeRunner.timing = false
      failures.push(`decode batch ${batch} ${label}: ${error instanceof Error ? error.message : String(error)}`)
      log(`FAILED ${failures.at(-1)}`)
    }
  }
}

const prefill: Array<{ tokens: number; ms: number; flops: number; flopsPerSecond: number }> = []
decodeRunner.mode = "eager"
for (const N of prefills) {
  const tokens = [Array.from({ length: N }, (_, j) => token(0, j))]
  const plan = planOf(0, tokens, [0], Math.ceil(N / blockSize))
  try {
    await run(plan)
  } catch (error) {
    failures.push(`prefill ${N}: ${error instanceof Error ? error.message : String(error)}`)
    log(`FAILED ${failures.at(-1)}`)
    continue
  }
  const samples: number[] = []
  for (let r = 0; r < 3; r++) {
    const start = performance.now()
    await run(plan)
    samples.push(performance.now() - start)
  }
  const ms = samples.sort((a, b) => a - b)[1]
  // every layer's GEMMs over N tokens, causal attention (QK^T and PV), lm_head on the last row
  const flops = 2 * N * L * (layerParams - 2 * H) + 4 * L * Hq * D * ((N * (N + 1)) / 2) + 2 * V * H
  prefill.push({ tokens: N, ms, flops, flopsPerSecond: flops / (ms / 1e3) })
  log(`prefill ${N} tokens ${ms.toFixed(1)} ms, ${(flops / (ms / 1e3) / 1e12).toFixed(0)} TFLOP/s`)
}
await Effect.runPromise(executor.close())
gpu.close()

// ---- peers, in their own processes, once our memory is released ----
const python = (script: string, args: string[], timeoutS: number) => {
  const path = join(peersDir, script)
  if (!existsSync(path)) return `${path} not found`
  const start = performance.now()
  const r = spawnSync("python3", [path, ...args], { encoding: "utf8", timeout: timeoutS * 1e3, env: { ...process.env, OUT: outDir, PYTHONUNBUFFERED: "1" } })
  process.stdout.write(`---- python3 ${script} ${args.join(" ")} (${((performance.now() - start) / 1e3).toFixed(0)} s, exit ${r.status}${r.signal ? `, ${r.signal}` : ""})\n${r.stdout ?? ""}${(r.stderr ?? "").split("\n").slice(-15).join("\n")}\n`)
  return r.status === 0 ? "ok" : `exit ${r.status}${r.signal ? ` (${r.signal}, timeout ${timeoutS} s)` : ""}`
}
const readJson = (file: string): unknown => (existsSync(join(outDir, file)) ? JSON.parse(readFileSync(join(outDir, file), "utf8")) : undefined)
mkdirSync(outDir, { recursive: true })
const rooflineStatus = process.argv.includes("--no-peers") ? "skipped" : python("roofline.py", [], 120)
const hfArgs = ["--batch", argValue("--hf-batch", "1,64"), "--prompt", String(prompt), "--new", "256", "--modes", argValue("--hf-modes", "eager,static")]
// --hf-deadline (epoch seconds) leaves transformers whatever the device call has left
const hfTimeout = process.argv.includes("--hf-deadline") ? Number(argValue("--hf-deadline", "0")) - Date.now() / 1e3 : Number(argValue("--hf-timeout", "240"))
const hfStatus = process.argv.includes("--no-peers") || hfTimeout < 30 ? "skipped" : python("hf_generate.py", hfArgs, Math.floor(hfTimeout))

const result: GpuBench = {
  device: gpu.device,
  commit: commit(),
  date: new Date().toISOString(),
  decodeSplit,
  asyncScheduling,
  command: `bun bench/gpu.ts ${process.argv.slice(2).join(" ")}`.trim(),
  model: { shape: "Llama-3-8B", config: llama3_8b, weights: "dummy, made on the device (tsr_fill_uniform)", weightBytesPerDecodeStep: weightBytes, kvBytesPerToken, loadSeconds },
  correctness,
  failures,
  ceilings: { copyBytesPerSecond, gemmFlopsPerSecond, roofline: readJson("roofline.json"), rooflineStatus },
  ours: { prompt, steps, decode, prefill },
  peers: { hf: readJson("peer_hf.json"), hfStatus, hfCommand: `python3 hf_generate.py ${hfArgs.join(" ")}` }
}
const path = join(outDir, `gpu-${slug}.json`)
writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`)
printTable(result)
log(`wrote ${path}`)
for (const f of failures) log(`FAILED ${f}`)
process.exit(correctness.every((c) => c.pass) && failures.length === 0 ? 0 : 1)
