/**
 * The random Llama-3-shaped model that bench/gpu-check-large.py builds (262M parameters, bf16
 * safetensors) through the real loading path and executor, against what transformers recorded in
 * its reference.json (float32, on the GPU):
 *   (a) first-step logits of prompt 0: ||ours - ref|| / ||ref|| <= max(2e-2, transformers' own
 *       bf16 error);
 *   (b) each prompt alone: greedy ids equal to the reference up to the first step whose reference
 *       margin is below 4x the largest first-step logit error (gpu-check-models.ts's rule);
 *   (c) batch invariance: batches of B = 1, 2, 3, 4, 8, 16, 32, 64 sequences (sequence s of batch
 *       B decodes prompt (B + s) mod 8, so each prompt runs in many batch sizes and rows, and B = 3
 *       pads a decode graph bucket): each sequence's ids equal to its prompt's ids alone up to the
 *       first step where that run's own margin is below the same bound. Batches take the engine's
 *       greedy path (argmax on the device, no logits on the host); runs alone bring the logits back
 *       for their margins. On CUDA every decode step replays the decode graphs.
 * Writes gpu-check-large-<device>.json into --out (default $OUT, else bench/results) and exits 1
 * if anything failed.
 *
 *   python3 bench/gpu-check-large.py DIR && bun bench/gpu-check-large.ts --model DIR [--out DIR]
 *   python3 bench/gpu-check-large.py DIR --small && bun bench/gpu-check-large.ts --provider wasm --model DIR
 *   [--batches 1,2,3,4,8,16,32,64]
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { contiguousPlan } from "../src/engine/contiguousPlan.ts"
import { logitsOf } from "../src/engine/executor.ts"
import { greedyBatch, greedyBatchWithMargins } from "../src/engine/greedyBatch.ts"
import { loadModelExecutor, type ModelExecutor } from "../src/engine/modelExecutor.ts"
import { cudaDecodeRunner } from "../src/kernels/cuda/decodeRunner.ts"
import { createCudaProvider, type CudaKernelProvider } from "../src/kernels/cuda/provider.ts"
import type { KernelProvider } from "../src/kernels/provider.ts"
import { createWasmProvider } from "../src/kernels/wasm/provider.ts"
import { judge, logitError, type GreedyReference, type GreedyResult, type LogitError } from "./gpu-check-models.ts"
import { commit, deviceSlug } from "./lib/results.ts"

interface Reference {
  readonly shape: string
  readonly parameters: number
  readonly first_logits: number[]
  readonly prompts: GreedyReference[]
  readonly hf_bf16: LogitError & { readonly greedy_ids: number[][]; readonly outsideChoiceSpan?: number }
  /** the lm_head's two largest singular directions (orthonormal, over the vocabulary) */
  readonly choice_span?: { readonly singular_values: number[]; readonly vectors: number[][] }
}

/**
 * ||e - Q Q^T e|| / ||ref|| for e = ours - ref: the first-step error outside the choice span.
 * Along the span bf16 rounding moves the logits by amounts that vary wildly between equally
 * correct implementations (this model's structure lifts two candidates by ~30 and chooses
 * between them there); outside it the error is steady, so a bug shows there.
 */
const errorOutsideSpan = (ours: Float32Array, reference: ReadonlyArray<number>, span: ReadonlyArray<ReadonlyArray<number>>): number => {
  const error = Float64Array.from(reference, (r, v) => ours[v] - r)
  for (const q of span) {
    let along = 0
    for (let v = 0; v < error.length; v++) along += q[v] * error[v]
    for (let v = 0; v < error.length; v++) error[v] -= along * q[v]
  }
  const norm = (x: ArrayLike<number>) => {
    let sum = 0
    for (let i = 0; i < x.length; i++) sum += x[i] * x[i]
    return Math.sqrt(sum)
  }
  return norm(error) / norm(reference)
}

interface PromptResult extends GreedyResult {
  readonly tokens: number
  /** leading steps where transformers in bf16 gives its own float32 ids (information) */
  readonly hfBf16Matched: number
}

interface BatchResult {
  readonly batch: number
  readonly sequences: number
  /** sums over the batch's sequences: the steps that had to match, those of them that did */
  readonly mustMatch: number
  readonly matched: number
  /** leading steps that matched past the must-match prefixes (information) */
  readonly beyond: number
  readonly pass: boolean
  /** the sequences that failed: row, prompt and their judgement */
  readonly failures: ReadonlyArray<{ readonly row: number; readonly prompt: number } & GreedyResult>
}

const argValue = (flag: string): string | undefined => {
  const i = process.argv.indexOf(flag)
  return i >= 0 ? process.argv[i + 1] : undefined
}
const modelDir = argValue("--model")
if (!modelDir) throw new Error("--model DIR is required: the directory bench/gpu-check-large.py wrote")
const outDir = argValue("--out") ?? process.env.OUT ?? join(process.cwd(), "bench", "results")
const providerName = argValue("--provider") ?? "cuda"
const batchSizes = (argValue("--batches") ?? "1,2,3,4,8,16,32,64").split(",").map(Number)

const leadingMatches = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): number => {
  let n = 0
  while (n < a.length && a[n] === b[n]) n++
  return n
}

/** sequence s of batch B decodes this prompt */
const promptOf = (B: number, s: number, prompts: number) => (B + s) % prompts

const check = async (executor: ModelExecutor, reference: Reference, steps: number) => {
  const prompts = reference.prompts
  const prompt0 = prompts[0].prompt_ids
  const plan = contiguousPlan([prompt0], [0], executor.blockSize, Math.ceil(prompt0.length / executor.blockSize))
  const first = logitsOf(await Effect.runPromise(executor.execute(plan)))
  const error = logitError(first, reference.first_logits)
  const bound = Math.max(2e-2, reference.hf_bf16.normwise)
  const firstLogits = { ...error, bound, pass: error.normwise <= bound }
  // a diagnostic beside the issue's bound: 1.5x transformers' own bf16 error outside the span, at least 3e-3
  const outside = reference.choice_span && reference.hf_bf16.outsideChoiceSpan !== undefined
    ? ((value: number, hf: number) => ({ value, hf, bound: Math.max(3e-3, 1.5 * hf), pass: value <= Math.max(3e-3, 1.5 * hf) }))(
        errorOutsideSpan(first, reference.first_logits, reference.choice_span.vectors), reference.hf_bf16.outsideChoiceSpan)
    : undefined
  const minMargin = 4 * error.maxAbs

  // (b) each prompt alone, with its margins: the reference of (c)
  const alone: GreedyReference[] = []
  const greedy: PromptResult[] = []
  for (const [i, p] of prompts.entries()) {
    const { ids, margins } = await greedyBatchWithMargins(executor, [p.prompt_ids], steps)
    alone.push({ prompt_ids: p.prompt_ids, greedy_ids: ids[0], margins: margins[0] })
    greedy.push({ tokens: p.prompt_ids.length, ...judge(ids[0], p, steps, minMargin), hfBf16Matched: leadingMatches(reference.hf_bf16.greedy_ids[i], p.greedy_ids) })
  }

  // (c) batches on the engine's greedy path, against the same prompts alone
  const batches: BatchResult[] = []
  for (const B of batchSizes) {
    const rows = Array.from({ length: B }, (_, s) => promptOf(B, s, prompts.length))
    const ids = await greedyBatch(executor, rows.map((i) => prompts[i].prompt_ids), steps)
    const judged = rows.map((i, s) => ({ row: s, prompt: i, ...judge(ids[s], alone[i], steps, minMargin) }))
    const sum = (f: (r: GreedyResult) => number) => judged.reduce((n, r) => n + f(r), 0)
    batches.push({
      batch: B,
      sequences: B,
      mustMatch: sum((r) => r.mustMatch),
      matched: sum((r) => Math.min(r.matched, r.mustMatch)),
      beyond: sum((r) => Math.max(0, r.matched - r.mustMatch)),
      pass: judged.every((r) => r.pass),
      failures: judged.filter((r) => !r.pass)
    })
    console.log(`  batch ${B} decoded`)
  }
  return { firstLogits, outside, minMargin, alone: alone.map((a) => ({ ids: a.greedy_ids, margins: a.margins })), greedy, batches }
}

const format = (n: number) => (Number.isFinite(n) ? (Math.abs(n) >= 1e-3 || n === 0 ? n.toFixed(4) : n.toExponential(2)) : String(n))

const main = async () => {
  const reference = JSON.parse(readFileSync(join(modelDir, "reference.json"), "utf8")) as Reference
  const steps = reference.prompts[0].greedy_ids.length
  const cuda: CudaKernelProvider | undefined = providerName === "wasm" ? undefined : await createCudaProvider()
  const provider: KernelProvider = cuda ?? (await createWasmProvider())
  const device = cuda?.device ?? `wasm (${navigator.hardwareConcurrency} threads)`
  console.log(`gpu-check-large on ${device}: ${modelDir} (${reference.shape}, ${(reference.parameters / 1e6).toFixed(0)}M parameters)`)

  const lengths = reference.prompts.map((p) => p.prompt_ids.length)
  const batchTokens = (B: number) => Array.from({ length: B }, (_, s) => lengths[promptOf(B, s, lengths.length)]).reduce((a, b) => a + b, 0)
  const maxSeqs = Math.max(...batchSizes)
  const blockSize = 16
  const blocksPerSeq = Math.ceil((Math.max(...lengths) + steps) / blockSize)
  const before = provider.memory.usedBytes
  const start = performance.now()
  const executor = await loadModelExecutor(modelDir, {
    provider,
    blockSize,
    maxNumSeqs: maxSeqs,
    maxModelLen: blocksPerSeq * blockSize,
    // greedyBatch prefills a whole batch in one step and gives each sequence its own blocks
    maxNumBatchedTokens: Math.max(...lengths, ...batchSizes.map(batchTokens)),
    numBlocks: maxSeqs * blocksPerSeq,
    ...(cuda ? { stepRunner: cudaDecodeRunner(cuda, "graphs") } : {})
  })
  console.log(`loaded in ${((performance.now() - start) / 1000).toFixed(1)} s`)
  let result: Awaited<ReturnType<typeof check>>
  try {
    result = await check(executor, reference, steps)
  } finally {
    await Effect.runPromise(executor.close())
  }
  const leakedBytes = provider.memory.usedBytes - before
  provider.close()
  const seconds = (performance.now() - start) / 1000

  const { firstLogits, outside, minMargin, greedy, batches } = result
  const pass = firstLogits.pass && greedy.every((g) => g.pass) && batches.every((b) => b.pass) && leakedBytes === 0
  const slug = deviceSlug(device)
  mkdirSync(outDir, { recursive: true })
  const path = join(outDir, `gpu-check-large-${slug}.json`)
  const record = {
    device,
    commit: commit(),
    command: `bun bench/gpu-check-large.ts ${process.argv.slice(2).join(" ")}`.trim(),
    date: new Date().toISOString(),
    tolerances: {
      firstLogits: "||ours - ref|| / ||ref|| <= max(2e-2, transformers' own bf16 error), prompt 0",
      firstLogitsOutsideChoiceSpan: "diagnostic, not in `pass`: the same error with the lm_head's two largest singular directions projected out, <= max(3e-3, 1.5 x transformers' own)",
      greedy: "ids equal to transformers f32 up to the first reference margin < 4 x max |first-step logit error|",
      batches: "ids equal to the same prompt alone up to the first step where that run's own margin < the same bound"
    },
    results: {
      pass,
      seconds,
      model: { shape: reference.shape, parameters: reference.parameters },
      firstLogits,
      ...(outside && { firstLogitsOutsideChoiceSpan: outside }),
      hfBf16: { normwise: reference.hf_bf16.normwise, maxAbs: reference.hf_bf16.maxAbs },
      minMargin,
      greedy,
      batches,
      leakedBytes,
      alone: result.alone
    }
  }
  writeFileSync(path, `${JSON.stringify(record, null, 1)}\n`)

  const mark = (ok: boolean) => (ok ? "ok  " : "FAIL")
  console.log(
    `\n${mark(firstLogits.pass)} first-step logits, prompt 0 (${lengths[0]} tokens): normwise ${format(firstLogits.normwise)} max ${format(firstLogits.maxAbs)} ` +
      `[transformers bf16: ${format(reference.hf_bf16.normwise)} max ${format(reference.hf_bf16.maxAbs)}] <= ${format(firstLogits.bound)}`
  )
  if (outside) {
    console.log(
      `${mark(outside.pass)} the same outside the lm_head's choice span (diagnostic): ${format(outside.value)} [transformers bf16: ${format(outside.hf)}] <= ${format(outside.bound)}`
    )
  }
  console.log(`\ngreedy alone vs transformers f32: must match while the reference margin >= 4 x ${format(firstLogits.maxAbs)} = ${format(minMargin)}`)
  console.log("       prompt  tokens  matched  must  [transformers bf16 matched]")
  greedy.forEach((g, i) =>
    console.log(`  ${mark(g.pass)} ${String(i).padStart(6)}  ${String(g.tokens).padStart(6)}  ${`${g.matched}/${g.steps}`.padStart(7)}  ${String(g.mustMatch).padStart(4)}  [${g.hfBf16Matched}]`)
  )
  console.log(`\nbatch invariance vs each prompt alone: must match while that run's own margin >= ${format(minMargin)}`)
  console.log("       batch  sequences  must-match steps  of them matched  matched beyond")
  for (const b of batches) {
    console.log(`  ${mark(b.pass)} ${String(b.batch).padStart(5)}  ${String(b.sequences).padStart(9)}  ${String(b.mustMatch).padStart(16)}  ${String(b.matched).padStart(15)}  ${String(b.beyond).padStart(14)}`)
    for (const f of b.failures) console.log(`         row ${f.row} (prompt ${f.prompt}): matched ${f.matched} of ${f.mustMatch} that must`)
  }
  const total = (f: (b: BatchResult) => number) => batches.reduce((n, b) => n + f(b), 0)
  console.log(`  in all: ${total((b) => b.mustMatch)} steps had to match, ${total((b) => b.matched)} did; ${total((b) => b.beyond)} more matched beyond the must-match prefixes`)
  console.log(`\nleaked ${leakedBytes} B of device memory; ${seconds.toFixed(1)} s`)
  console.log(`\n${pass ? "PASS" : "FAIL"}: wrote ${path}`)
  process.exit(pass ? 0 : 1)
}

await main()
