/**
 * Two builds, or two settings, of the CUDA library side by side on one GPU in one call: the
 * decode steps of `gpu.ts` run alternately A, B, A, B, ... (each in a process of its own), and
 * the table gives every batch's median ms/step on each side and the ratio B / A. Timings on the
 * lent machines drift by a few percent between calls and machines, so a change is judged here,
 * against its base in the same call, not against an older record.
 *
 *   bun bench/gpu-ab.ts [--a-lib PATH] [--b-lib PATH] [--a-script PATH] [--b-script PATH]
 *                       [--a-env K=V,...] [--b-env K=V,...]
 *                       [--rounds 2] [--batches 1,16,64] [--variants argmax] [--out DIR]
 *
 * A side is a library (default: the one `make -C cuda` builds), the gpu.ts it runs (default:
 * the gpu.js bundled beside this script, or gpu.ts beside this source) and environment
 * variables (for the library's switches, TSR_*). A base of another commit:
 * `bench/gpu-ab-base.sh REF` on the development machine puts REF's cuda/ and its gpu.ts,
 * bundled, under .device-carry/ab-base (after prep.sh, which empties only dist/); there,
 * `make -C .device-carry/ab-base/cuda -j8 all` and `--a-lib .device-carry/ab-base/cuda/build/libtessera_cuda.so
 * --a-script .device-carry/ab-base/gpu.js` (the script too where the C ABI or the stages changed).
 *
 * Writes gpu-ab-<device>.json into --out (the sides, every round, the medians and ratios).
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { commit, deviceSlug } from "./lib/results.ts"

const argValue = (flag: string, fallback?: string): string | undefined => {
  const i = process.argv.indexOf(flag)
  return i >= 0 ? process.argv[i + 1] : fallback
}

interface Side {
  readonly name: "A" | "B"
  readonly lib: string | undefined
  readonly script: string | undefined
  readonly env: Record<string, string>
}

const parseEnv = (spec: string | undefined): Record<string, string> =>
  Object.fromEntries(
    (spec ?? "")
      .split(",")
      .filter((pair) => pair.length > 0)
      .map((pair) => {
        const at = pair.indexOf("=")
        if (at <= 0) throw new Error(`gpu-ab: "${pair}" is not K=V`)
        return [pair.slice(0, at), pair.slice(at + 1)]
      })
  )

const side = (name: "A" | "B", flag: "a" | "b"): Side => {
  const [lib, script] = [argValue(`--${flag}-lib`), argValue(`--${flag}-script`)]
  return {
    name,
    lib: lib === undefined ? undefined : resolve(lib),
    script: script === undefined ? undefined : resolve(script),
    env: parseEnv(argValue(`--${flag}-env`))
  }
}

const sides = [side("A", "a"), side("B", "b")] as const
const rounds = Number(argValue("--rounds", "2"))
const batches = argValue("--batches", "1,16,64")!
const variants = argValue("--variants", "argmax")!
const outDir = argValue("--out", process.env.OUT ?? join(process.cwd(), "bench", "results"))!
const gpuScript = [join(import.meta.dir, "gpu.js"), join(import.meta.dir, "gpu.ts")].find((path) => existsSync(path))
if (gpuScript === undefined) throw new Error(`gpu-ab: neither gpu.js nor gpu.ts beside ${import.meta.dir}`)

interface DecodeRecord {
  readonly batch: number
  readonly mode: string
  readonly medianMs: number
}
interface Run {
  readonly side: "A" | "B"
  readonly round: number
  readonly device: string
  readonly decode: ReadonlyArray<DecodeRecord>
}

const runSide = (s: Side, round: number): Run => {
  const out = mkdtempSync(join(tmpdir(), `gpu-ab-${s.name}-`))
  const args = [s.script ?? gpuScript, "--out", out, "--batches", batches, "--variants", variants, "--no-check", "--no-peers", "--prefill", "1024"]
  const env = { ...process.env, ...s.env, ...(s.lib === undefined ? {} : { TESSERA_CUDA_LIB: s.lib }) }
  const r = spawnSync(process.execPath, args, { env, encoding: "utf8", timeout: 300_000 })
  if (r.status !== 0) throw new Error(`gpu-ab: side ${s.name} round ${round} exited ${r.status}${r.signal ? ` (${r.signal})` : ""}\n${(r.stderr ?? "").slice(-3000)}`)
  const file = readdirSync(out).find((name) => name.startsWith("gpu-") && name.endsWith(".json"))
  if (file === undefined) throw new Error(`gpu-ab: side ${s.name} round ${round} wrote no gpu-*.json into ${out}`)
  const record = JSON.parse(readFileSync(join(out, file), "utf8")) as { device: string; ours: { decode: DecodeRecord[] } }
  return { side: s.name, round, device: record.device, decode: record.ours.decode.map(({ batch, mode, medianMs }) => ({ batch, mode, medianMs })) }
}

const runs: Run[] = []
for (let round = 1; round <= rounds; round++) {
  for (const s of sides) {
    const run = runSide(s, round)
    runs.push(run)
    console.log(`[gpu-ab] round ${round} ${s.name}: ${run.decode.map((d) => `batch ${d.batch} ${d.mode} ${d.medianMs.toFixed(3)} ms`).join(", ")}`)
  }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}
const keys = [...new Set(runs[0].decode.map((d) => `${d.batch}|${d.mode}`))]
const summary = keys.map((key) => {
  const [batch, mode] = key.split("|")
  const of = (name: "A" | "B") =>
    runs.filter((r) => r.side === name).flatMap((r) => r.decode.filter((d) => `${d.batch}|${d.mode}` === key).map((d) => d.medianMs))
  const [a, b] = [of("A"), of("B")]
  return { batch: Number(batch), mode, aMs: median(a), bMs: median(b), ratio: median(b) / median(a), aRounds: a, bRounds: b }
})

const describe = (s: Side) => `${s.lib ?? "cuda/build (default)"}${s.script === undefined ? "" : ` run by ${s.script}`}${Object.keys(s.env).length ? ` with ${Object.entries(s.env).map(([k, v]) => `${k}=${v}`).join(" ")}` : ""}`
console.log(`\n${runs[0].device}; A: ${describe(sides[0])}; B: ${describe(sides[1])}; ${rounds} rounds, alternating`)
console.log("batch  mode                 A ms/step   B ms/step    B / A")
for (const s of summary) console.log(`${String(s.batch).padStart(5)}  ${s.mode.padEnd(18)} ${s.aMs.toFixed(3).padStart(10)}  ${s.bMs.toFixed(3).padStart(10)}  ${s.ratio.toFixed(3).padStart(7)}`)

mkdirSync(outDir, { recursive: true })
const path = join(outDir, `gpu-ab-${deviceSlug(runs[0].device)}.json`)
const record = {
  device: runs[0].device,
  commit: commit(),
  command: `bun bench/gpu-ab.ts ${process.argv.slice(2).join(" ")}`.trim(),
  date: new Date().toISOString(),
  sides: sides.map((s) => ({ name: s.name, lib: s.lib ?? null, script: s.script ?? null, env: s.env })),
  runs,
  summary
}
writeFileSync(path, `${JSON.stringify(record, null, 2)}\n`)
console.log(`[gpu-ab] wrote ${path}`)
