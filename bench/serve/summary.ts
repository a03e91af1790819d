import type { RequestResult } from "./client.ts"
import type { LoadRun } from "./run.ts"

/**
 * The figures of vLLM's benchmark_serving (`calculate_metrics`), from one load run:
 * TTFT, TPOT = (latency - TTFT) / (output tokens - 1) per request with more than one output
 * token, ITL = every gap between streamed chunks of every request, and E2EL = latency.
 * Times are milliseconds, as vLLM prints them.
 */

export interface Distribution {
  readonly mean: number
  readonly median: number
  readonly p99: number
  readonly std: number
}

export interface ServeMetrics {
  readonly completed: number
  readonly failed: number
  readonly durationSeconds: number
  readonly totalInputTokens: number
  readonly totalOutputTokens: number
  readonly requestThroughput: number
  readonly outputThroughput: number
  readonly totalTokenThroughput: number
  readonly peakConcurrency: number
  readonly ttftMs: Distribution
  readonly tpotMs: Distribution
  readonly itlMs: Distribution
  readonly e2elMs: Distribution
  /** false when some server sent no `usage` and output tokens were counted as chunks */
  readonly outputTokensFromUsage: boolean
  /** the first few errors, for the report */
  readonly errors: ReadonlyArray<string>
}

/** numpy's default percentile: linear interpolation between the closest ranks */
export const percentile = (sorted: ReadonlyArray<number>, p: number): number => {
  if (sorted.length === 0) return 0
  const rank = (p / 100) * (sorted.length - 1)
  const below = Math.floor(rank)
  const above = Math.min(below + 1, sorted.length - 1)
  return sorted[below] + (sorted[above] - sorted[below]) * (rank - below)
}

export const distribution = (values: ReadonlyArray<number>): Distribution => {
  if (values.length === 0) return { mean: 0, median: 0, p99: 0, std: 0 }
  const sorted = [...values].sort((a, b) => a - b)
  const mean = sorted.reduce((sum, v) => sum + v, 0) / sorted.length
  const variance = sorted.reduce((sum, v) => sum + (v - mean) ** 2, 0) / sorted.length
  return { mean, median: percentile(sorted, 50), p99: percentile(sorted, 99), std: Math.sqrt(variance) }
}

export const summarize = (run: LoadRun, promptTokensEstimate: ReadonlyArray<number>): ServeMetrics => {
  const ok = run.results.flatMap((result, i) => (result.ok ? [{ result, promptEstimate: promptTokensEstimate[i] }] : []))
  const failures = run.results.filter((r): r is Extract<RequestResult, { ok: false }> => !r.ok)
  const ms = (s: number) => s * 1000
  const totalInputTokens = ok.reduce((sum, { result, promptEstimate }) => sum + (result.promptTokens ?? promptEstimate), 0)
  const totalOutputTokens = ok.reduce((sum, { result }) => sum + result.outputTokens, 0)
  const tpots = ok
    .filter(({ result }) => result.outputTokens > 1)
    .map(({ result }) => ms((result.latencySeconds - result.ttftSeconds) / (result.outputTokens - 1)))
  const duration = run.durationSeconds
  return {
    completed: ok.length,
    failed: failures.length,
    durationSeconds: duration,
    totalInputTokens,
    totalOutputTokens,
    requestThroughput: ok.length / duration,
    outputThroughput: totalOutputTokens / duration,
    totalTokenThroughput: (totalInputTokens + totalOutputTokens) / duration,
    peakConcurrency: run.peakConcurrency,
    ttftMs: distribution(ok.map(({ result }) => ms(result.ttftSeconds))),
    tpotMs: distribution(tpots),
    itlMs: distribution(ok.flatMap(({ result }) => result.itlSeconds.map(ms))),
    e2elMs: distribution(ok.map(({ result }) => ms(result.latencySeconds))),
    outputTokensFromUsage: ok.every(({ result }) => result.outputTokensFromUsage),
    errors: [...new Set(failures.map((f) => f.error))].slice(0, 5)
  }
}
