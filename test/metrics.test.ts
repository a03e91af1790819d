import { MetricType, parse } from "@platformatic/promotel"
import { describe, expect, it } from "vitest"
import { RateWindow } from "../src/metrics/rateWindow.ts"
import { makeServerMetrics, type ServerMetricsOptions } from "../src/metrics/serverMetrics.ts"
import { buckets125, finishedReasons } from "../src/metrics/vllmMetrics.ts"

/**
 * A scrape as Prometheus would store it: promotel parses the exposition text into a remote-write
 * request, one time series per sample line (its family in `__metric_name`, a histogram line's
 * suffix in `__suffix`), plus each family's TYPE.
 */
interface Scrape {
  readonly types: ReadonlyMap<string, string>
  readonly series: ReadonlyArray<{ family: string; suffix?: string; labels: Record<string, string>; value: number }>
}
const typeNames = new Map<number, string>(Object.entries(MetricType).map(([name, code]) => [code, name]))

const parseScrape = (text: string): Scrape => {
  const written = parse(text)
  const series = (written.timeseries ?? []).map((ts) => {
    const labels = Object.fromEntries((ts.labels ?? []).map((l) => [l.name!, l.value!]))
    const { __metric_name: family, __suffix: suffix, ...rest } = labels
    return { family, suffix, labels: rest, value: ts.samples![0].value! }
  })
  // promotel skips a line it cannot read: every sample line must have become a series
  const sampleLines = text.split("\n").filter((line) => line.trim() !== "" && !line.startsWith("#"))
  expect(series).toHaveLength(sampleLines.length)
  const types = new Map((written.metadata ?? []).map((m) => [m.metric_family_name!, typeNames.get(m.type!)!]))
  return { types, series }
}

const model = { model_name: "tiny-llama", engine: "0" }

const setup = (options: Partial<ServerMetricsOptions> = {}) => {
  let clock = 1000
  const metrics = makeServerMetrics({ modelName: "tiny-llama", maxModelLen: 2048, now: () => clock, ...options })
  return { metrics, scrape: async () => parseScrape(await metrics.render()), advance: (seconds: number) => (clock += seconds) }
}

const matching = (scrape: Scrape, family: string, labels: Record<string, string>, suffix?: string) =>
  scrape.series.filter(
    (s) => s.family === family && s.suffix === suffix && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  )

/** the value of the one series of a counter or gauge with these labels */
const value = (scrape: Scrape, family: string, labels: Record<string, string> = {}) => {
  const found = matching(scrape, family, labels)
  expect(found, `${family} ${JSON.stringify(labels)}`).toHaveLength(1)
  return found[0].value
}

/** the one histogram with these labels: cumulative bucket counts by `le`, sum and count */
const histogram = (scrape: Scrape, family: string, labels: Record<string, string> = model) => {
  const [sum, count] = ["sum", "count"].map((suffix) => {
    const found = matching(scrape, family, labels, suffix)
    expect(found, `${family}_${suffix} ${JSON.stringify(labels)}`).toHaveLength(1)
    return found[0].value
  })
  const buckets = new Map(matching(scrape, family, labels, "bucket").map((s) => [s.labels.le, s.value]))
  expect(buckets.get("+Inf")).toBe(count)
  return { buckets, sum, count }
}

// Names, types and buckets as vllm/v1/metrics/loggers.py defines them, written the way
// Python's prometheus_client puts them on the wire (counters gain `_total`).
const vllmFamilies: ReadonlyArray<[string, string]> = [
  ["vllm:num_requests_running", "GAUGE"],
  ["vllm:num_requests_waiting", "GAUGE"],
  ["vllm:kv_cache_usage_perc", "GAUGE"],
  ["vllm:prefix_cache_queries_total", "COUNTER"],
  ["vllm:prefix_cache_hits_total", "COUNTER"],
  ["vllm:prompt_tokens_total", "COUNTER"],
  ["vllm:generation_tokens_total", "COUNTER"],
  ["vllm:request_success_total", "COUNTER"],
  ["vllm:num_preemptions_total", "COUNTER"],
  ["vllm:time_to_first_token_seconds", "HISTOGRAM"],
  ["vllm:inter_token_latency_seconds", "HISTOGRAM"],
  ["vllm:request_time_per_output_token_seconds", "HISTOGRAM"],
  ["vllm:e2e_request_latency_seconds", "HISTOGRAM"],
  ["vllm:request_queue_time_seconds", "HISTOGRAM"],
  ["vllm:request_prefill_time_seconds", "HISTOGRAM"],
  ["vllm:request_decode_time_seconds", "HISTOGRAM"],
  ["vllm:request_inference_time_seconds", "HISTOGRAM"],
  ["vllm:request_prompt_tokens", "HISTOGRAM"],
  ["vllm:request_generation_tokens", "HISTOGRAM"],
  ["vllm:request_params_max_tokens", "HISTOGRAM"],
  ["vllm:iteration_tokens_total", "HISTOGRAM"]
]
const ttftBuckets = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560]
const perTokenBuckets = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80]
const latencyBuckets = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680]
const bucketBounds = (scrape: Scrape, family: string) =>
  [...histogram(scrape, family).buckets.keys()]
    .filter((le) => le !== "+Inf")
    .map(Number)
    .sort((a, b) => a - b)

describe("server metrics", () => {
  it("exposes every vLLM family under vLLM's wire name, type and labels from start-up", async () => {
    const scrape = await setup().scrape()
    for (const [name, type] of vllmFamilies) {
      expect(scrape.types.get(name), name).toBe(type)
      const series = scrape.series.filter((s) => s.family === name)
      expect(series.length, name).toBeGreaterThan(0)
      for (const { labels } of series) expect(labels, name).toMatchObject(model)
    }
    // series exist at zero before any traffic, as vLLM's do, so rate() works from the first scrape
    expect(value(scrape, "vllm:prompt_tokens_total", model)).toBe(0)
    expect(histogram(scrape, "vllm:e2e_request_latency_seconds").count).toBe(0)
    const reasons = matching(scrape, "vllm:request_success_total", model).map((s) => s.labels.finished_reason)
    expect(reasons.sort()).toEqual([...finishedReasons].sort())
  })

  it("uses vLLM's histogram buckets", async () => {
    const scrape = await setup().scrape()
    expect(bucketBounds(scrape, "vllm:time_to_first_token_seconds")).toEqual(ttftBuckets)
    expect(bucketBounds(scrape, "vllm:inter_token_latency_seconds")).toEqual(perTokenBuckets)
    expect(bucketBounds(scrape, "vllm:request_time_per_output_token_seconds")).toEqual(perTokenBuckets)
    for (const name of ["e2e_request_latency", "request_queue_time", "request_prefill_time", "request_decode_time"]) {
      expect(bucketBounds(scrape, `vllm:${name}_seconds`)).toEqual(latencyBuckets)
    }
    expect(bucketBounds(scrape, "vllm:request_prompt_tokens")).toEqual([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000])
    expect(buckets125(100)).toEqual([1, 2, 5, 10, 20, 50, 100])
  })

  it("counts steps, tokens, cache lookups and finished requests", async () => {
    const { metrics, scrape } = setup()
    metrics.setSchedulerState({ running: 3, waiting: 2, kvCacheUsage: 0.25 })
    metrics.observeStep({ promptTokens: 96, generationTokens: 0, prefixCacheQueries: 128, prefixCacheHits: 32 })
    metrics.observeStep({ promptTokens: 0, generationTokens: 3, preemptions: 1 })
    metrics.observeTimeToFirstToken(0.03)
    metrics.observeInterTokenLatency(0.02)
    metrics.observeInterTokenLatency(0.2)
    metrics.onRequestFinished({
      finishedReason: "length",
      promptTokens: 128,
      generationTokens: 5,
      maxTokens: 5,
      e2eSeconds: 1.2,
      queueSeconds: 0.1,
      prefillSeconds: 0.3,
      decodeSeconds: 0.8
    })
    const s = await scrape()

    expect(value(s, "vllm:num_requests_running", model)).toBe(3)
    expect(value(s, "vllm:num_requests_waiting", model)).toBe(2)
    expect(value(s, "request_queue_depth", { replica: "0" })).toBe(2)
    expect(value(s, "vllm:kv_cache_usage_perc", model)).toBe(0.25)
    expect(value(s, "vllm:prompt_tokens_total", model)).toBe(96)
    expect(value(s, "vllm:generation_tokens_total", model)).toBe(3)
    expect(value(s, "vllm:prefix_cache_queries_total", model)).toBe(128)
    expect(value(s, "vllm:prefix_cache_hits_total", model)).toBe(32)
    expect(value(s, "vllm:num_preemptions_total", model)).toBe(1)
    expect(value(s, "vllm:request_success_total", { ...model, finished_reason: "length" })).toBe(1)
    expect(value(s, "vllm:request_success_total", { ...model, finished_reason: "stop" })).toBe(0)

    const itl = histogram(s, "vllm:inter_token_latency_seconds")
    expect(itl.count).toBe(2)
    expect(itl.sum).toBeCloseTo(0.22)
    expect(itl.buckets.get("0.025")).toBe(1) // cumulative: 0.02 only
    expect(itl.buckets.get("0.2")).toBe(2)
    expect(histogram(s, "vllm:time_to_first_token_seconds").buckets.get("0.04")).toBe(1)
    const iteration = histogram(s, "vllm:iteration_tokens_total")
    expect([iteration.count, iteration.sum]).toEqual([2, 99])

    // time per output token leaves the prefill's token out: 0.8 s over 4 decoded tokens
    expect(histogram(s, "vllm:request_time_per_output_token_seconds").sum).toBeCloseTo(0.2)
    expect(histogram(s, "vllm:request_inference_time_seconds").sum).toBeCloseTo(1.1)
    const e2e = histogram(s, "vllm:e2e_request_latency_seconds")
    expect([e2e.buckets.get("1"), e2e.buckets.get("1.5"), e2e.count]).toEqual([0, 1, 1])
    expect(histogram(s, "vllm:request_generation_tokens").sum).toBe(5)
    expect(histogram(s, "vllm:request_params_max_tokens").sum).toBe(5)
  })

  it("reports replica throughput over the rate window", async () => {
    const { metrics, scrape, advance } = setup({ rateWindowSeconds: 10 })
    for (let second = 0; second < 20; second++) {
      metrics.observeStep({ promptTokens: 0, generationTokens: 50 })
      metrics.onRequestFinished({
        finishedReason: "stop",
        promptTokens: 1,
        generationTokens: 50,
        e2eSeconds: 1,
        queueSeconds: 0,
        prefillSeconds: 0.1,
        decodeSeconds: 0.9
      })
      advance(1)
    }
    let s = await scrape()
    expect(value(s, "tokens_per_second", { replica: "0" })).toBeCloseTo(50)
    expect(value(s, "requests_per_second", { replica: "0" })).toBeCloseTo(1)
    advance(30)
    s = await scrape()
    expect(value(s, "tokens_per_second", { replica: "0" })).toBe(0)
  })

  it("has no GPU samples until a GPU backend reports, and drops a lost GPU's", async () => {
    const { metrics, scrape } = setup()
    const gpuFamilies = ["gpu_utilization", "gpu_memory_used", "gpu_memory_total"]
    let s = await scrape()
    for (const name of gpuFamilies) {
      expect(s.types.get(name), name).toBe("GAUGE")
      expect(matching(s, name, {}), name).toEqual([])
    }
    metrics.reportGpu({ rank: 5, tpGroup: 1, ppStage: 1, utilization: 0.9, memoryUsedBytes: 70e9, memoryTotalBytes: 80e9 })
    s = await scrape()
    expect(value(s, "gpu_utilization", { rank: "5", tp_group: "1", pp_stage: "1" })).toBe(0.9)
    expect(value(s, "gpu_memory_total", { rank: "5" })).toBe(80e9)

    metrics.onGpuFailure(5)
    s = await scrape()
    expect(value(s, "gpu_failures_total", { rank: "5" })).toBe(1)
    for (const name of gpuFamilies) expect(matching(s, name, {}), name).toEqual([])
  })

  it("records collectives, failovers and checkpoints under the seed's names", async () => {
    const { metrics, scrape } = setup()
    metrics.observeAllReduce(3, 0.04)
    metrics.observeAllReduce(3, 2)
    metrics.observePipelineTransfer(0, 0.3)
    metrics.addCommunicationBytes(1, 2.5e9)
    metrics.onReplicaFailover("replica-b")
    metrics.onCheckpointOperation()
    metrics.onCheckpointOperation()
    const s = await scrape()
    expect(s.types.get("tp_allreduce_latency_ms")).toBe("HISTOGRAM")
    const allReduce = histogram(s, "tp_allreduce_latency_ms", { layer: "3" })
    expect([allReduce.count, allReduce.buckets.get("0.05")]).toEqual([2, 1])
    expect(histogram(s, "pp_transfer_latency_ms", { stage: "0" }).count).toBe(1)
    expect(value(s, "communication_volume_gb", { rank: "1" })).toBe(2.5)
    expect(value(s, "replica_failovers_total", { replica: "replica-b" })).toBe(1)
    expect(value(s, "checkpoint_operations_total")).toBe(2)
  })

  it("keeps each engine's series in its own registry", async () => {
    const a = makeServerMetrics({ modelName: "a", maxModelLen: 64 })
    const b = makeServerMetrics({ modelName: "b", maxModelLen: 64 })
    a.observeStep({ promptTokens: 7, generationTokens: 0 })
    const s = parseScrape(await b.render())
    expect(value(s, "vllm:prompt_tokens_total", { model_name: "b" })).toBe(0)
    expect(matching(s, "vllm:prompt_tokens_total", { model_name: "a" })).toEqual([])
    expect(b.contentType).toBe("text/plain; version=0.0.4; charset=utf-8")
  })
})

describe("RateWindow", () => {
  it("divides by the time it has existed while younger than the window", () => {
    let clock = 0
    const rate = new RateWindow(10, () => clock)
    rate.add(6)
    clock = 2
    expect(rate.perSecond()).toBe(3)
  })

  it("forgets amounts older than the window", () => {
    let clock = 100.5
    const rate = new RateWindow(5, () => clock)
    rate.add(1000)
    clock = 106
    rate.add(10)
    expect(rate.perSecond()).toBe(10 / 4)
  })
})
