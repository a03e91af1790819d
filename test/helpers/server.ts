import { MetricType, parse } from "@platformatic/promotel"
import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"

/**
 * `bun run serve` as a real child process on loopback, the way a user starts it, and the
 * small clients the server tests share.
 */

const root = join(import.meta.dirname, "..", "..")
const bun = join(root, "node_modules", ".bin", "bun")

export interface RunningServer {
  readonly url: string
  readonly pid: number
  /** stdout and stderr so far */
  readonly output: () => string
  /** the exit code (null when killed by a signal) */
  readonly exited: Promise<number | null>
  readonly signal: (signal: NodeJS.Signals) => void
  /** SIGKILL, for teardown: the graceful path has tests of its own */
  readonly kill: () => Promise<void>
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** starts the server on a free port; resolves once it listens and, unless told otherwise, is ready */
export const startServer = async (args: ReadonlyArray<string> = [], options: { readonly waitReady?: boolean } = {}): Promise<RunningServer> => {
  const child = spawn(bun, ["src/cli/serve.ts", "--port", "0", ...args], { cwd: root, stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  child.stdout.on("data", (d: Buffer) => (output += d.toString()))
  child.stderr.on("data", (d: Buffer) => (output += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  let gone = false
  void exited.then(() => (gone = true))
  const deadline = Date.now() + 60_000
  let url: string | undefined
  while (url === undefined) {
    url = /listening on (http:\/\/\S+)/.exec(output)?.[1]
    if (gone || Date.now() > deadline) throw new Error(`server did not start:\n${output}`)
    if (url === undefined) await sleep(20)
  }
  const server: RunningServer = {
    url,
    pid: child.pid!,
    output: () => output,
    exited,
    signal: (signal) => child.kill(signal),
    kill: async () => {
      if (!gone) child.kill("SIGKILL")
      await exited
    }
  }
  if (options.waitReady !== false) await waitFor(async () => (await fetch(`${url}/ready`)).status === 200, 30_000, "/ready")
  return server
}

export const waitFor = async (condition: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(25)
  }
}

/** `bun run generate --json`: the reference output the server must reproduce */
export const generateJson = (args: ReadonlyArray<string>): Promise<{ prompt_ids: number[]; output_ids: number[]; text: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(bun, ["src/cli/generate.ts", "--json", ...args], { cwd: root, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()))
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
    child.once("exit", (code) => (code === 0 ? resolve(JSON.parse(stdout.trim().split("\n").at(-1)!)) : reject(new Error(`generate exited ${code}: ${stderr}`))))
  })

export const postJson = (url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
  fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) })

/** the `data:` payloads of an SSE body, [DONE] included */
export const sseEvents = (text: string): string[] =>
  text
    .split("\n\n")
    .filter((block) => block.startsWith("data: "))
    .map((block) => block.slice("data: ".length))

export interface Sample {
  readonly family: string
  readonly suffix?: string
  readonly labels: Record<string, string>
  readonly value: number
}

/** a /metrics scrape read by a Prometheus-compatible parser; every sample line must parse */
export const scrape = async (url: string): Promise<{ readonly samples: ReadonlyArray<Sample>; readonly types: ReadonlyMap<string, string> }> => {
  const text = await (await fetch(`${url}/metrics`)).text()
  const written = parse(text)
  const samples = (written.timeseries ?? []).map((ts) => {
    const labels = Object.fromEntries((ts.labels ?? []).map((l) => [l.name!, l.value!]))
    const { __metric_name: family, __suffix: suffix, ...rest } = labels
    return { family, suffix, labels: rest, value: ts.samples![0].value! }
  })
  const lines = text.split("\n").filter((line) => line.trim() !== "" && !line.startsWith("#"))
  if (samples.length !== lines.length) throw new Error(`promotel read ${samples.length} of ${lines.length} sample lines`)
  const typeNames = new Map<number, string>(Object.entries(MetricType).map(([name, code]) => [code, name]))
  const types = new Map((written.metadata ?? []).map((m) => [m.metric_family_name!, typeNames.get(m.type!)!]))
  return { samples, types }
}

/** the one sample of a gauge or counter (with these labels) */
export const sampleValue = (samples: ReadonlyArray<Sample>, family: string, labels: Record<string, string> = {}, suffix?: string): number => {
  const found = samples.filter((s) => s.family === family && s.suffix === suffix && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  if (found.length !== 1) throw new Error(`${found.length} samples of ${family}${suffix ? `_${suffix}` : ""} ${JSON.stringify(labels)}`)
  return found[0].value
}

/** resident set size of a process, from /proc (Linux) */
export const rssBytes = (pid: number): number => {
  const kib = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]
  if (kib === undefined) throw new Error(`no VmRSS for ${pid}`)
  return Number(kib) * 1024
}
