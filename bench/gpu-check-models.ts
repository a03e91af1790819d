/**
 * The fixture models of test/fixtures/models through the real executor (stages, layers,
 * workspace) on a given provider, against what transformers recorded in reference.json (a CPU
 * float32 run):
 *   - first-step logits: ||gpu - ref|| / ||ref|| <= 2e-2 (bf16 activations over a few layers),
 *     or, where transformers itself in bf16 is further off than that, no further off than it
 *     (storing an f16 or f32 checkpoint in bf16 costs more than 2e-2 on some fixtures);
 *   - greedy decoding, the prompt alone, the long prompt over reversed blocks, and both
 *     prompts batched: the ids must equal the reference up to the first step whose reference
 *     top-1/top-2 margin is below the bf16 error of a margin, taken as 4x the largest logit
 *     error of the first step (two logits in a margin, and a factor 2 for the error growing
 *     over the decoded steps);
 *   - the executor, closed, leaves no device memory behind.
 * transformers' own error in bf16 (`hfBf16Errors`: the same checkpoint loaded with
 * dtype=bfloat16, eager attention, on the GPU) is measured where python3 has torch and
 * transformers: what bf16 storage costs in the field's reference implementation.
 */
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { contiguousPlan } from "../src/engine/contiguousPlan.ts"
import { loadModelExecutor, type ModelExecutorOptions } from "../src/engine/modelExecutor.ts"
import { logitsOf } from "../src/engine/executor.ts"
import type { KernelProvider } from "../src/kernels/provider.ts"
import { greedyBatch } from "../src/engine/greedyBatch.ts"

export interface GreedyReference {
  readonly prompt_ids: number[]
  readonly greedy_ids: number[]
  readonly margins: number[]
}

interface Reference extends GreedyReference {
  readonly first_logits: number[]
  readonly long: GreedyReference
}

export interface GreedyResult {
  readonly steps: number
  /** leading steps whose reference margin is above the bf16 error: these must match */
  readonly mustMatch: number
  /** leading steps that do match */
  readonly matched: number
  readonly pass: boolean
}

export interface LogitError {
  readonly normwise: number
  readonly maxAbs: number
}

export interface ModelResult {
  readonly fixture: string
  readonly firstLogits: LogitError & { readonly bound: number; readonly pass: boolean }
  /** transformers in bf16 against the same reference, where it could be run */
  readonly hfBf16?: LogitError
  readonly minMargin: number
  readonly greedy: GreedyResult
  readonly long: GreedyResult
  readonly batched: { readonly first: GreedyResult; readonly long: GreedyResult }
  /** device bytes still allocated after the executor closed */
  readonly leakedBytes: number
  readonly pass: boolean
  readonly error?: string
}

const blockSize = 16

/** the fixtures, found from the working directory: a bundled entry no longer sits beside them */
export const fixturesDir = (): string => join(process.cwd(), "test", "fixtures", "models")

export const fixtureNames = (): string[] => {
  const dir = fixturesDir()
  return existsSync(dir) ? readdirSync(dir).filter((name) => existsSync(join(dir, name, "reference.json"))).sort() : []
}

/** leading steps of `actual` equal to the reference, and how many must be: those before its first margin below `minMargin` */
export const judge = (actual: number[], reference: GreedyReference, steps: number, minMargin: number): GreedyResult => {
  const low = reference.margins.slice(0, steps).findIndex((m) => m < minMargin)
  const mustMatch = low < 0 ? steps : low
  let matched = 0
  while (matched < steps && actual[matched] === reference.greedy_ids[matched]) matched++
  return { steps, mustMatch, matched, pass: matched >= mustMatch }
}

/** ||logits - reference|| / ||reference|| and the largest |logit - reference|; a non-finite logit counts as infinitely far */
export const logitError = (logits: Float32Array, reference: ReadonlyArray<number>): LogitError => {
  let diffSq = 0
  let refSq = 0
  let maxAbs = 0
  reference.forEach((expected, v) => {
    const diff = Math.abs(logits[v] - expected)
    diffSq += diff * diff
    refSq += expected * expected
    maxAbs = Math.max(maxAbs, Number.isFinite(diff) ? diff : Number.POSITIVE_INFINITY)
  })
  return { normwise: logits.length === reference.length ? Math.sqrt(diffSq / refSq) : Number.POSITIVE_INFINITY, maxAbs }
}

/** `options` adds executor options: bench/gpu.ts reruns the check with its decode graphs */
export const checkModel = async (provider: KernelProvider, name: string, hfBf16?: LogitError, options: ModelExecutorOptions = {}): Promise<ModelResult> => {
  const dir = join(fixturesDir(), name)
  const reference = JSON.parse(readFileSync(join(dir, "reference.json"), "utf8")) as Reference
  const before = provider.memory.usedBytes
  const executor = await loadModelExecutor(dir, { ...options, provider, maxNumSeqs: 4, maxModelLen: 256 })
  try {
    const plan = contiguousPlan([reference.prompt_ids], [0], blockSize, Math.ceil(reference.prompt_ids.length / blockSize))
    const logits = logitsOf(await Effect.runPromise(executor.execute(plan)))
    const { normwise, maxAbs } = logitError(logits, reference.first_logits)
    const bound = Math.max(2e-2, hfBf16?.normwise ?? 0)
    const firstLogits = { normwise, maxAbs, bound, pass: normwise <= bound }
    const minMargin = 4 * maxAbs

    const [alone] = await greedyBatch(executor, [reference.prompt_ids], reference.greedy_ids.length)
    const [long] = await greedyBatch(executor, [reference.long.prompt_ids], reference.long.greedy_ids.length, { reverseBlocks: true })
    const [first, second] = await greedyBatch(executor, [reference.prompt_ids, reference.long.prompt_ids], 8)
    const greedy = judge(alone, reference, reference.greedy_ids.length, minMargin)
    const longResult = judge(long, reference.long, reference.long.greedy_ids.length, minMargin)
    const batched = { first: judge(first, reference, 8, minMargin), long: judge(second, reference.long, 8, minMargin) }
    await Effect.runPromise(executor.close())
    const leakedBytes = provider.memory.usedBytes - before
    return {
      fixture: name,
      firstLogits,
      ...(hfBf16 ? { hfBf16 } : {}),
      minMargin,
      greedy,
      long: longResult,
      batched,
      leakedBytes,
      pass: firstLogits.pass && greedy.pass && longResult.pass && batched.first.pass && batched.long.pass && leakedBytes === 0
    }
  } catch (error) {
    await Effect.runPromise(executor.close()).catch(() => undefined)
    throw error
  }
}

const hfScript = `
import glob, json, os, sys, torch
from transformers import AutoModelForCausalLM
device = "cuda" if torch.cuda.is_available() else "cpu"
for d in sorted(glob.glob(os.path.join(sys.argv[1], "*", "reference.json"))):
    d = os.path.dirname(d)
    r = json.load(open(os.path.join(d, "reference.json")))
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.bfloat16, attn_implementation="eager").to(device).eval()
    with torch.no_grad():
        l = m(torch.tensor([r["prompt_ids"]], device=device)).logits[0, -1].float().cpu()
    ref = torch.tensor(r["first_logits"])
    print(json.dumps({"fixture": os.path.basename(d), "normwise": float((l - ref).norm() / ref.norm()), "maxAbs": float((l - ref).abs().max())}))
`

/** first-step logit errors of transformers itself in bf16, per fixture; a reason where it cannot run */
export const hfBf16Errors = (): Map<string, LogitError> | string => {
  const run = spawnSync("python3", ["-c", hfScript, fixturesDir()], { encoding: "utf8", timeout: 240_000 })
  if (run.status !== 0) return `python3 with torch and transformers did not run: ${(run.stderr || run.error?.message || "").trim().split("\n").slice(-1)[0]}`
  const errors = new Map<string, LogitError>()
  for (const line of run.stdout.split("\n").filter((l) => l.startsWith("{"))) {
    const { fixture, normwise, maxAbs } = JSON.parse(line) as LogitError & { fixture: string }
    errors.set(fixture, { normwise, maxAbs })
  }
  return errors
}
