import type { Distribution, ServeMetrics } from "./summary.ts"

/** The result table, laid out as vLLM's benchmark_serving prints it. */
export const formatTable = (
  metrics: ServeMetrics,
  load: { readonly requestRate: number; readonly maxConcurrency?: number }
): string => {
  const lines: Array<string> = []
  const row = (label: string, value: number | string, digits = 2) =>
    lines.push(`${label.padEnd(40)} ${typeof value === "number" ? value.toFixed(digits) : value}`)
  const rule = (title: string, fill: string) => {
    const side = Math.max(0, 50 - title.length)
    lines.push(fill.repeat(Math.floor(side / 2)) + title + fill.repeat(Math.ceil(side / 2)))
  }
  const latency = (short: string, d: Distribution) => {
    row(`Mean ${short} (ms):`, d.mean)
    row(`Median ${short} (ms):`, d.median)
    row(`P99 ${short} (ms):`, d.p99)
  }

  rule(" Serving Benchmark Result ", "=")
  row("Successful requests:", metrics.completed, 0)
  row("Failed requests:", metrics.failed, 0)
  // the offered load is the ceiling of the achieved request throughput
  row("Request rate configured (RPS):", load.requestRate === Infinity ? "inf" : load.requestRate)
  row("Maximum request concurrency:", load.maxConcurrency ?? "unlimited", 0)
  row("Peak concurrent requests:", metrics.peakConcurrency, 0)
  row("Benchmark duration (s):", metrics.durationSeconds)
  row("Total input tokens:", metrics.totalInputTokens, 0)
  row("Total generated tokens:", metrics.totalOutputTokens, 0)
  row("Request throughput (req/s):", metrics.requestThroughput)
  row("Output token throughput (tok/s):", metrics.outputThroughput)
  row("Total Token throughput (tok/s):", metrics.totalTokenThroughput)
  rule("Time to First Token", "-")
  latency("TTFT", metrics.ttftMs)
  rule("Time per Output Token (excl. 1st token)", "-")
  latency("TPOT", metrics.tpotMs)
  rule("Inter-token Latency", "-")
  latency("ITL", metrics.itlMs)
  rule("End-to-end Latency", "-")
  latency("E2EL", metrics.e2elMs)
  lines.push("=".repeat(50))
  if (!metrics.outputTokensFromUsage) lines.push("note: the server sent no usage; output tokens were counted as stream chunks")
  for (const error of metrics.errors) lines.push(`error: ${error}`)
  return lines.join("\n")
}

export interface ServeResult {
  readonly date: string
  readonly command: string
  readonly commit: string | null
  readonly url: string
  readonly parameters: Record<string, unknown>
  /** one entry per request rate, in the order they ran */
  readonly runs: ReadonlyArray<{ readonly requestRate: number | "inf"; readonly metrics: ServeMetrics }>
}

/** HEAD of the repository the benchmark runs from, or null outside a git checkout. */
export const gitCommit = (): string | null => {
  const git = Bun.spawnSync(["git", "rev-parse", "HEAD"], { stdout: "pipe", stderr: "ignore" })
  return git.exitCode === 0 ? git.stdout.toString().trim() : null
}
