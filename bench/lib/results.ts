import { execSync } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import os from "node:os"
import { join } from "node:path"

/** median and minimum milliseconds of `repeats` timed calls, after `warmup` untimed ones */
export const time = (fn: () => void, repeats: number, warmup = 2): { ms: number; minMs: number } => {
  for (let i = 0; i < warmup; i++) fn()
  const samples = Array.from({ length: repeats }, () => {
    const start = performance.now()
    fn()
    return performance.now() - start
  }).sort((a, b) => a - b)
  return { ms: samples[Math.floor(repeats / 2)], minMs: samples[0] }
}

/**
 * The commit the results are of: $TESSERA_COMMIT where set (the device machine's copy of the
 * checkout has no history of its own), else HEAD, marked when the tree has changes.
 */
export const commit = (): string => {
  if (process.env.TESSERA_COMMIT) return process.env.TESSERA_COMMIT
  try {
    const head = execSync("git rev-parse HEAD", { stdio: ["ignore", "pipe", "ignore"] }).toString().trim()
    const dirty = execSync("git status --porcelain --untracked-files=no", { stdio: ["ignore", "pipe", "ignore"] }).toString().trim()
    return dirty ? `${head}+uncommitted` : head
  } catch {
    return "uncommitted"
  }
}

/** a device's name as a file name part: "NVIDIA H100 80GB HBM3" -> "nvidia-h100-80gb-hbm3" */
export const deviceSlug = (device: string): string => device.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "")

export const cpuDevice = (): string =>
  `${os.type()} ${os.release()} ${os.arch()}, ${os.cpus()[0]?.model ?? "unknown CPU"} x ${os.cpus().length}`

/** writes `<dir>/<file>` (default bench/results) with the device, command, commit and date beside the results */
export const recordResults = (file: string, command: string, results: unknown, device = cpuDevice(), dir = join(import.meta.dir, "..", "results")): string => {
  mkdirSync(dir, { recursive: true })
  const path = join(dir, file)
  writeFileSync(path, `${JSON.stringify({ device, command, commit: commit(), date: new Date().toISOString(), results }, null, 2)}\n`)
  return path
}

/** a plain fill loop (Float32Array.from would box n values first and stall the timings in GC) */
export const filled = (n: number, seed: number): Float32Array => {
  const a = new Float32Array(n)
  for (let i = 0; i < n; i++) a[i] = Math.sin(i * 0.618 + seed)
  return a
}
