/**
 * GPU correctness check of the CUDA provider, run on a machine with a GPU:
 *   (a) every catalog kernel against the WASM provider on random inputs (gpu-check-kernels.ts);
 *   (b) the fixture models through the executor against transformers' reference.json
 *       (gpu-check-models.ts);
 *   (c) compute-sanitizer (memcheck, racecheck, initcheck) over the attention kernels, driven
 *       by cuda/build/attention_memcheck, which also checks them against float64.
 * Writes gpu-check-<device>.json into --out (default $OUT, else bench/results) and exits 1 if
 * anything failed.
 *
 *   make -C cuda all tools && bun bench/gpu-check.ts [--out DIR] [--no-sanitizer]
 *   bun bench/gpu-check.ts --provider wasm   # the harness against itself, on any CPU
 *
 * On the device machine it runs bundled: see bench/README.md.
 */
import { spawnSync } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { commit, deviceSlug } from "./lib/results.ts"
import { createCudaProvider } from "../src/kernels/cuda/provider.ts"
import type { KernelProvider } from "../src/kernels/provider.ts"
import { createWasmProvider } from "../src/kernels/wasm/provider.ts"
import { checkKernels, type KernelResult } from "./gpu-check-kernels.ts"
import { checkModel, fixtureNames, hfBf16Errors, type ModelResult } from "./gpu-check-models.ts"

interface SanitizerResult {
  readonly tool: string
  readonly exitCode: number | null
  readonly seconds: number
  readonly summary: string
  readonly pass: boolean
}

const argValue = (flag: string): string | undefined => {
  const i = process.argv.indexOf(flag)
  return i >= 0 ? process.argv[i + 1] : undefined
}
const outDir = argValue("--out") ?? process.env.OUT ?? join(process.cwd(), "bench", "results")
const providerName = argValue("--provider") ?? "cuda"
const runSanitizer = !process.argv.includes("--no-sanitizer") && providerName === "cuda"

const sanitize = (tool: string): SanitizerResult => {
  const start = performance.now()
  const command = tool === "none" ? ["cuda/build/attention_memcheck"] : ["compute-sanitizer", "--tool", tool, "--error-exitcode", "1", "cuda/build/attention_memcheck"]
  const run = spawnSync(command[0], command.slice(1), { encoding: "utf8", timeout: 100_000 })
  const output = `${run.stdout ?? ""}${run.stderr ?? ""}${run.error ? `\n${run.error.message}` : ""}`
  process.stdout.write(`---- ${command.join(" ")}\n${output}`)
  const lines = output.split("\n").filter((line) => /ERROR SUMMARY|RACECHECK SUMMARY|attention_memcheck:|FAILED|error/i.test(line))
  return {
    tool,
    exitCode: run.status,
    seconds: (performance.now() - start) / 1000,
    summary: lines.slice(-4).join(" | "),
    pass: run.status === 0
  }
}

const format = (n: number) => (Number.isFinite(n) ? (Math.abs(n) >= 1e-3 || n === 0 ? n.toFixed(4) : n.toExponential(2)) : String(n))

const main = async () => {
  const cpu = await createWasmProvider({ threads: 1 })
  const gpu: KernelProvider & { device?: string } =
    providerName === "wasm" ? await createWasmProvider({ threads: 1 }) : await createCudaProvider()
  const device = gpu.device ?? "wasm (harness self-test)"
  console.log(`gpu-check on ${device}`)

  const kernels: KernelResult[] = checkKernels(gpu, cpu)
  // transformers in bf16 first, in its own process: it holds GPU memory only while it runs
  const hf = providerName === "cuda" ? hfBf16Errors() : "not asked for (--provider wasm)"
  const models: ModelResult[] = []
  for (const name of fixtureNames()) {
    models.push(
      await checkModel(gpu, name, typeof hf === "string" ? undefined : hf.get(name)).catch(
        (error: unknown): ModelResult => ({
          fixture: name,
          firstLogits: { normwise: Number.NaN, maxAbs: Number.NaN, bound: 2e-2, pass: false },
          minMargin: Number.NaN,
          greedy: { steps: 0, mustMatch: 0, matched: 0, pass: false },
          long: { steps: 0, mustMatch: 0, matched: 0, pass: false },
          batched: { first: { steps: 0, mustMatch: 0, matched: 0, pass: false }, long: { steps: 0, mustMatch: 0, matched: 0, pass: false } },
          leakedBytes: -1,
          pass: false,
          error: error instanceof Error ? `${error.message}\n${error.stack ?? ""}` : String(error)
        })
      )
    )
  }
  gpu.close()
  cpu.close()
  const sanitizer = runSanitizer ? ["none", "memcheck", "racecheck", "initcheck"].map(sanitize) : []

  const pass = kernels.every((k) => k.pass) && models.length > 0 && models.every((m) => m.pass) && sanitizer.every((s) => s.pass)
  const slug = deviceSlug(device)
  mkdirSync(outDir, { recursive: true })
  const path = join(outDir, `gpu-check-${slug}.json`)
  const record = {
    device,
    command: `bun bench/gpu-check.ts ${process.argv.slice(2).join(" ")}`.trim(),
    commit: commit(),
    date: new Date().toISOString(),
    tolerances: {
      kernels:
        "inputs rounded to bf16 on the host; per element |gpu - wasm| <= 2^-7 |wasm| + 1e-3 rms(wasm), finite (outputs start as NaN); " +
        "embedding, gather_rows, copy, kv_write, argmax exact",
      models:
        "first-step logits ||gpu - ref|| / ||ref|| <= max(2e-2, the same error of transformers in bf16 where measured); " +
        "greedy ids equal up to the first reference margin < 4 x max |first-step logit error|",
      sanitizer: "exit status 0 under compute-sanitizer --error-exitcode 1; the driver checks attention against float64 within 2^-8 |ref| + 1e-3"
    },
    results: { pass, kernels, models, ...(typeof hf === "string" ? { hfBf16: hf } : {}), sanitizer }
  }
  writeFileSync(path, `${JSON.stringify(record, null, 2)}\n`)

  console.log("\nkernels (gpu vs wasm)")
  for (const k of kernels) {
    console.log(
      `  ${k.pass ? "ok  " : "FAIL"} ${k.kernel.padEnd(15)} ${k.output.padEnd(9)} worst/bound ${format(k.worstOfBound).padStart(8)}  ` +
        `normwise ${format(k.normwise).padStart(9)}  ${k.case}${k.note ? `  [${k.note}]` : ""}`
    )
  }
  console.log(`\nmodels (gpu vs transformers f32${typeof hf === "string" ? `; no transformers bf16: ${hf}` : "; in [] transformers' own bf16 error"})`)
  for (const m of models) {
    const g = (r: { matched: number; mustMatch: number; steps: number }) => `${r.matched}/${r.steps} (>= ${r.mustMatch})`
    console.log(
      `  ${m.pass ? "ok  " : "FAIL"} ${m.fixture.padEnd(8)} logits normwise ${format(m.firstLogits.normwise)} max ${format(m.firstLogits.maxAbs)}` +
        (m.hfBf16 ? ` [${format(m.hfBf16.normwise)} max ${format(m.hfBf16.maxAbs)}]` : "") +
        ` <= ${format(m.firstLogits.bound)}  ` +
        `greedy ${g(m.greedy)}  long ${g(m.long)}  batched ${g(m.batched.first)} ${g(m.batched.long)}  leaked ${m.leakedBytes} B` +
        (m.error ? `\n      ${m.error.split("\n").slice(0, 6).join("\n      ")}` : "")
    )
  }
  if (sanitizer.length > 0) {
    console.log("\ncompute-sanitizer over cuda/build/attention_memcheck")
    for (const s of sanitizer) console.log(`  ${s.pass ? "ok  " : "FAIL"} ${s.tool.padEnd(10)} exit ${s.exitCode} ${s.seconds.toFixed(1)} s  ${s.summary}`)
  }
  console.log(`\n${pass ? "PASS" : "FAIL"}: wrote ${path}`)
  process.exit(pass ? 0 : 1)
}

await main()
