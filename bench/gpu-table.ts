/**
 * The record bench/gpu.ts writes, and its table: ours beside the peers and the floor the
 * ceilings set. `bun bench/gpu-table.ts FILE.json` prints the table of a recorded run.
 */
import { readFileSync } from "node:fs"

export interface GpuBench {
  readonly device: string
  readonly commit: string
  readonly date: string
  readonly decodeSplit?: boolean
  /** whether each decode step was launched before the one before was read (absent in older records: it was not) */
  readonly asyncScheduling?: boolean
  readonly command: string
  readonly model: { readonly shape: string; readonly config: unknown; readonly weights: string; readonly weightBytesPerDecodeStep: number; readonly kvBytesPerToken: number; readonly loadSeconds: number }
  readonly correctness: ReadonlyArray<{ fixture: string; mode: string; pass: boolean; detail: string }>
  readonly failures: ReadonlyArray<string>
  readonly ceilings: { readonly copyBytesPerSecond: number; readonly gemmFlopsPerSecond: number; readonly roofline: unknown; readonly rooflineStatus: string }
  readonly ours: {
    readonly prompt: number
    readonly steps: number
    /** sampleMs: host argmax in JavaScript, recorded by runs before the argmax moved to the device */
    readonly decode: ReadonlyArray<{ batch: number; mode: string; msPerStep: number; medianMs: number; tokensPerSecond: number; deviceBusy?: number; sampleMs?: number }>
    readonly prefill: ReadonlyArray<{ tokens: number; ms: number; flops: number; flopsPerSecond: number }>
  }
  readonly peers: { readonly hf: unknown; readonly hfStatus: string; readonly hfCommand: string }
}

interface Roofline {
  readonly read_GBps_sum?: number
  readonly copy_GBps_read_plus_write?: number
  readonly bf16_gemm_TFLOPs?: number
}
interface HfRun {
  readonly mode: string
  readonly batch: number
  readonly ms_per_step?: number
  readonly tok_s_total?: number
  readonly error?: string
}

const cell = (s: string, width = 12) => s.padStart(width)

export const printTable = (r: GpuBench): void => {
  const roofline = (r.ceilings.roofline ?? {}) as Roofline
  const readBw = roofline.read_GBps_sum ? roofline.read_GBps_sum * 1e9 : r.ceilings.copyBytesPerSecond
  const gemm = roofline.bf16_gemm_TFLOPs ? roofline.bf16_gemm_TFLOPs * 1e12 : r.ceilings.gemmFlopsPerSecond
  const batches = [...new Set(r.ours.decode.map((d) => d.batch))].sort((a, b) => a - b)
  const context = r.ours.prompt + r.ours.steps / 2
  // the floor of one step: every weight and the batch's KV read once, or the GEMMs at the cuBLAS rate
  const floorMs = (b: number) =>
    Math.max((r.model.weightBytesPerDecodeStep + b * context * r.model.kvBytesPerToken) / readBw, (b * r.model.weightBytesPerDecodeStep) / gemm) * 1e3

  console.log(`\n${r.model.shape} shape, bf16, ${r.model.weights}; ${r.device}; commit ${r.commit}; flash-decoding ${r.decodeSplit === false ? "off" : "on"}; decode steps ${r.asyncScheduling ? "launched before the step before is read (asynchronous scheduling)" : "launched once the step before is read"}`)
  console.log(
    `ceilings: read ${(readBw / 1e12).toFixed(2)} TB/s (${roofline.read_GBps_sum ? "roofline.py sum" : "our copy"}), ` +
      `bf16 GEMM ${(gemm / 1e12).toFixed(0)} TFLOP/s (${roofline.bf16_gemm_TFLOPs ? "roofline.py" : "our cuBLAS"}); ` +
      `ours: copy ${(r.ceilings.copyBytesPerSecond / 1e12).toFixed(2)} TB/s read+write, cuBLAS 8192^3 ${(r.ceilings.gemmFlopsPerSecond / 1e12).toFixed(0)} TFLOP/s`
  )
  console.log(`\ndecode, prompt ${r.ours.prompt}, ${r.ours.steps} new tokens: ms/step (tokens/s over the batch)`)
  console.log(`${"".padEnd(30)}${batches.map((b) => cell(`batch ${b}`, 20)).join("")}`)
  const show = (ms: number | undefined, b: number) => (ms === undefined ? cell("-", 20) : cell(`${ms.toFixed(2)} (${((b * 1e3) / ms).toFixed(0)})`, 20))
  console.log(`${"floor (bytes / read bw)".padEnd(30)}${batches.map((b) => show(floorMs(b), b)).join("")}`)
  for (const mode of [...new Set(r.ours.decode.map((d) => d.mode))]) {
    const of = (b: number) => r.ours.decode.find((d) => d.batch === b && d.mode === mode)
    console.log(`${`tessera ${mode}`.padEnd(30)}${batches.map((b) => show(of(b)?.msPerStep, b)).join("")}`)
    if (r.ours.decode.some((d) => d.mode === mode && d.deviceBusy !== undefined)) {
      console.log(`${"  device busy".padEnd(30)}${batches.map((b) => cell(of(b)?.deviceBusy !== undefined ? `${(100 * of(b)!.deviceBusy!).toFixed(1)}%` : "-", 20)).join("")}`)
    }
  }
  const hf = ((r.peers.hf as { runs?: HfRun[] } | undefined)?.runs ?? []) as HfRun[]
  for (const mode of [...new Set(hf.map((h) => h.mode))]) {
    const of = (b: number) => hf.find((h) => h.batch === b && h.mode === mode && h.ms_per_step !== undefined)?.ms_per_step
    console.log(`${`transformers ${mode}`.padEnd(30)}${batches.map((b) => show(of(b), b)).join("")}`)
  }
  if (hf.length === 0) console.log(`transformers: ${r.peers.hfStatus}`)
  const graphs1 = r.ours.decode.find((d) => d.batch === 1 && d.mode === "graphs") ?? r.ours.decode.find((d) => d.batch === 1)
  if (graphs1) console.log(`batch 1 (${graphs1.mode}) at ${((100 * floorMs(1)) / graphs1.msPerStep).toFixed(0)}% of the memory roofline`)
  if (r.ours.decode.some((d) => d.sampleMs !== undefined)) {
    console.log(`host argmax in JavaScript, not in the steps above: ${batches.map((b) => `batch ${b} ${r.ours.decode.find((d) => d.batch === b)?.sampleMs?.toFixed(2)} ms`).join(", ")}`)
  }
  console.log(`\nprefill (one sequence, eager)`)
  for (const p of r.ours.prefill) {
    console.log(`  ${String(p.tokens).padStart(5)} tokens ${p.ms.toFixed(1).padStart(8)} ms  ${(p.flopsPerSecond / 1e12).toFixed(0).padStart(4)} TFLOP/s = ${((100 * p.flopsPerSecond) / gemm).toFixed(0)}% of the bf16 GEMM rate`)
  }
  const failed = r.correctness.filter((c) => !c.pass)
  console.log(`\ncorrectness: ${r.correctness.length - failed.length}/${r.correctness.length} fixture checks pass${failed.length ? `; FAILED: ${failed.map((f) => `${f.mode}/${f.fixture}`).join(", ")}` : ""}`)
}

if (import.meta.main) printTable(JSON.parse(readFileSync(process.argv[2], "utf8")) as GpuBench)
