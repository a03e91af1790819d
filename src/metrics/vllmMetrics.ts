import { Counter, Gauge, Histogram, type Registry } from "prom-client"

/**
 * The metric families vLLM's v1 engine exports (vllm/v1/metrics/loggers.py,
 * `PrometheusStatLogger`), under vLLM's names, types, labels and buckets, so that
 * dashboards and alerts written for vLLM read Tessera unchanged.
 *
 * Wire names: Python's prometheus_client appends `_total` to a counter's name in the text
 * format (`vllm:prompt_tokens` is exposed as `vllm:prompt_tokens_total`, both in `# TYPE`
 * and in the samples); prom-client exposes a name as given, so counters are declared here
 * with the `_total` already on. Not reproduced: the `*_created` gauges prometheus_client adds
 * beside each counter and histogram (a client-library artefact no vLLM dashboard reads).
 */

/** vLLM's `FINISH_REASON_STRINGS` (vllm/v1/engine/__init__.py), the `finished_reason` label values. */
export const finishedReasons = ["stop", "length", "abort", "error", "repetition"] as const
export type FinishedReason = (typeof finishedReasons)[number]

/** vLLM labels every family with the served model and the engine (data-parallel) index. */
export const vllmLabelNames = ["model_name", "engine"] as const
type VllmLabel = (typeof vllmLabelNames)[number]

const timeToFirstTokenBuckets = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
  160.0, 640.0, 2560.0
]
/** shared by inter-token latency and per-request time per output token */
const perTokenBuckets = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0
]
/** shared by e2e, queue, prefill, decode and inference time */
const requestLatencyBuckets = [
  0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0,
  1920.0, 7680.0
]
const iterationTokenBuckets = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]

/** vLLM's `build_1_2_5_buckets`: 1, 2, 5, 10, 20, 50, ... up to `max` inclusive. */
export const buckets125 = (max: number): Array<number> => {
  const out: Array<number> = []
  for (let scale = 1; ; scale *= 10) {
    for (const mantissa of [1, 2, 5]) {
      if (mantissa * scale > max) return out
      out.push(mantissa * scale)
    }
  }
}

/** Each family bound to this engine's label values once, so observing does no label hashing. */
export interface VllmMetrics {
  readonly requestsRunning: Gauge.Internal<VllmLabel>
  readonly requestsWaiting: Gauge.Internal<VllmLabel>
  readonly kvCacheUsage: Gauge.Internal<VllmLabel>
  readonly prefixCacheQueries: Counter.Internal
  readonly prefixCacheHits: Counter.Internal
  readonly preemptions: Counter.Internal
  readonly promptTokens: Counter.Internal
  readonly generationTokens: Counter.Internal
  readonly requestSuccess: Readonly<Record<FinishedReason, Counter.Internal>>
  readonly requestPromptTokens: Histogram.Internal<VllmLabel>
  readonly requestGenerationTokens: Histogram.Internal<VllmLabel>
  readonly requestMaxTokens: Histogram.Internal<VllmLabel>
  readonly iterationTokens: Histogram.Internal<VllmLabel>
  readonly timeToFirstToken: Histogram.Internal<VllmLabel>
  readonly interTokenLatency: Histogram.Internal<VllmLabel>
  readonly requestTimePerOutputToken: Histogram.Internal<VllmLabel>
  readonly e2eRequestLatency: Histogram.Internal<VllmLabel>
  readonly requestQueueTime: Histogram.Internal<VllmLabel>
  readonly requestPrefillTime: Histogram.Internal<VllmLabel>
  readonly requestDecodeTime: Histogram.Internal<VllmLabel>
  readonly requestInferenceTime: Histogram.Internal<VllmLabel>
}

/**
 * Registers the families and creates this engine's series at zero, as vLLM does at start-up
 * (its `make_per_engine` calls `.labels()`), so that `rate()` and `increase()` see a series
 * from its first scrape rather than from its first event.
 */
export const registerVllmMetrics = (
  registry: Registry,
  labels: { readonly modelName: string; readonly engine: number },
  maxModelLen: number
): VllmMetrics => {
  const values: Record<VllmLabel, string> = { model_name: labels.modelName, engine: String(labels.engine) }
  const registers = [registry]
  const labelNames = vllmLabelNames

  const gauge = (name: string, help: string) => {
    const child = new Gauge({ name, help, labelNames, registers }).labels(values)
    child.set(0)
    return child
  }
  const counter = (name: string, help: string) => {
    const child = new Counter({ name, help, labelNames, registers }).labels(values)
    child.inc(0)
    return child
  }
  const histogram = (name: string, help: string, buckets: Array<number>) => {
    const family = new Histogram({ name, help, labelNames, buckets, registers })
    family.zero(values)
    return family.labels(values)
  }

  const success = new Counter({
    name: "vllm:request_success_total",
    help: "Count of successfully processed requests.",
    labelNames: [...labelNames, "finished_reason"],
    registers
  })
  const requestSuccess = Object.fromEntries(
    finishedReasons.map((reason) => {
      const child = success.labels({ ...values, finished_reason: reason })
      child.inc(0)
      return [reason, child]
    })
  ) as Record<FinishedReason, Counter.Internal>

  const tokenCountBuckets = buckets125(maxModelLen)
  return {
    requestsRunning: gauge("vllm:num_requests_running", "Number of requests in model execution batches."),
    requestsWaiting: gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
    kvCacheUsage: gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."),
    prefixCacheQueries: counter(
      "vllm:prefix_cache_queries_total",
      "Prefix cache queries, in terms of number of queried tokens."
    ),
    prefixCacheHits: counter("vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens."),
    preemptions: counter("vllm:num_preemptions_total", "Cumulative number of preemption from the engine."),
    promptTokens: counter("vllm:prompt_tokens_total", "Number of prefill tokens processed."),
    generationTokens: counter("vllm:generation_tokens_total", "Number of generation tokens processed."),
    requestSuccess,
    requestPromptTokens: histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", tokenCountBuckets),
    requestGenerationTokens: histogram(
      "vllm:request_generation_tokens",
      "Number of generation tokens processed.",
      tokenCountBuckets
    ),
    requestMaxTokens: histogram(
      "vllm:request_params_max_tokens",
      "Histogram of the max_tokens request parameter.",
      tokenCountBuckets
    ),
    iterationTokens: histogram(
      "vllm:iteration_tokens_total",
      "Histogram of number of tokens per engine_step.",
      iterationTokenBuckets
    ),
    timeToFirstToken: histogram(
      "vllm:time_to_first_token_seconds",
      "Histogram of time to first token in seconds.",
      timeToFirstTokenBuckets
    ),
    interTokenLatency: histogram(
      "vllm:inter_token_latency_seconds",
      "Histogram of inter-token latency in seconds.",
      perTokenBuckets
    ),
    requestTimePerOutputToken: histogram(
      "vllm:request_time_per_output_token_seconds",
      "Histogram of time_per_output_token_seconds per request.",
      perTokenBuckets
    ),
    e2eRequestLatency: histogram(
      "vllm:e2e_request_latency_seconds",
      "Histogram of e2e request latency in seconds.",
      requestLatencyBuckets
    ),
    requestQueueTime: histogram(
      "vllm:request_queue_time_seconds",
      "Histogram of time spent in WAITING phase for request.",
      requestLatencyBuckets
    ),
    requestPrefillTime: histogram(
      "vllm:request_prefill_time_seconds",
      "Histogram of time spent in PREFILL phase for request.",
      requestLatencyBuckets
    ),
    requestDecodeTime: histogram(
      "vllm:request_decode_time_seconds",
      "Histogram of time spent in DECODE phase for request.",
      requestLatencyBuckets
    ),
    requestInferenceTime: histogram(
      "vllm:request_inference_time_seconds",
      "Histogram of time spent in RUNNING phase for request.",
      requestLatencyBuckets
    )
  }
}
