import { Context, Layer } from "effect"
import { Registry } from "prom-client"
import { registerClusterMetrics } from "./clusterMetrics.ts"
import { RateWindow } from "./rateWindow.ts"
import { registerVllmMetrics, type FinishedReason } from "./vllmMetrics.ts"

/**
 * The Prometheus metrics of one engine process (one replica): every family lives in a
 * registry of its own, never prom-client's global one, so two engines in one process (tests,
 * an embedded router) do not share series. Callers report events in the engine's terms;
 * which families each event feeds is decided here, once.
 *
 * Times are seconds, as vLLM's are; collective latencies are milliseconds, as the seed's
 * names say.
 */

export type { FinishedReason } from "./vllmMetrics.ts"

export interface ServerMetricsOptions {
  /** the served model name: the `model_name` label of every vLLM family */
  readonly modelName: string
  /** the longest sequence the engine accepts: bounds the token-count histograms, as in vLLM */
  readonly maxModelLen: number
  /** the `engine` label of the vLLM families (vLLM's data-parallel engine index); default 0 */
  readonly engine?: number
  /** the `replica` label of the replica families; default "0" */
  readonly replica?: string
  /** window of `tokens_per_second` and `requests_per_second`; default 10 s */
  readonly rateWindowSeconds?: number
  /** clock in seconds, for the rate windows; default the monotonic clock */
  readonly now?: () => number
}

/** What the scheduler holds after planning a step. */
export interface SchedulerState {
  readonly running: number
  readonly waiting: number
  /** fraction of KV-cache blocks in use, 0..1 */
  readonly kvCacheUsage: number
}

/** What one engine step computed; all counts are this step's, not running totals. */
export interface StepStats {
  /** prompt tokens computed (prefill chunks; cache hits are not computed) */
  readonly promptTokens: number
  /** tokens sampled */
  readonly generationTokens: number
  readonly preemptions?: number
  /** prompt tokens looked up in the prefix cache */
  readonly prefixCacheQueries?: number
  /** of those, tokens whose KV was found cached */
  readonly prefixCacheHits?: number
}

/** A request that left the engine, with the phases vLLM's `FinishedRequestStats` has. */
export interface FinishedRequest {
  readonly finishedReason: FinishedReason
  readonly promptTokens: number
  readonly generationTokens: number
  /** the request's max_tokens, when it gave one */
  readonly maxTokens?: number
  /** arrival to last token */
  readonly e2eSeconds: number
  /** queued to first scheduled */
  readonly queueSeconds: number
  /** first scheduled to first token, preemptions included */
  readonly prefillSeconds: number
  /** first token to last token, preemptions included */
  readonly decodeSeconds: number
}

/** One GPU's state, as the GPU backend samples it. */
export interface GpuReport {
  readonly rank: number
  readonly tpGroup: number
  readonly ppStage: number
  /** fraction of time a kernel ran, 0..1 */
  readonly utilization: number
  readonly memoryUsedBytes: number
  readonly memoryTotalBytes: number
}

export interface ServerMetrics {
  readonly setSchedulerState: (state: SchedulerState) => void
  readonly observeStep: (step: StepStats) => void
  /** when a request samples its first token: arrival to that token */
  readonly observeTimeToFirstToken: (seconds: number) => void
  /** when a request samples a later token: the gap since its previous token */
  readonly observeInterTokenLatency: (seconds: number) => void
  readonly onRequestFinished: (request: FinishedRequest) => void
  /** GPU backends only: the CPU backend never calls it, so the GPU families stay empty there */
  readonly reportGpu: (gpu: GpuReport) => void
  /** counts the loss and drops the rank's GPU gauges, which would otherwise show its last report */
  readonly onGpuFailure: (rank: number) => void
  readonly observeAllReduce: (layer: number, latencyMs: number) => void
  readonly observePipelineTransfer: (stage: number, latencyMs: number) => void
  readonly addCommunicationBytes: (rank: number, bytes: number) => void
  readonly onReplicaFailover: (replica: string) => void
  readonly onCheckpointOperation: () => void
  /** the exposition text for GET /metrics */
  readonly render: () => Promise<string>
  /** the Content-Type of `render()`'s text */
  readonly contentType: string
}

export const makeServerMetrics = (options: ServerMetricsOptions): ServerMetrics => {
  const registry = new Registry()
  const now = options.now ?? (() => performance.now() / 1000)
  const replica = options.replica ?? "0"
  const vllm = registerVllmMetrics(registry, { modelName: options.modelName, engine: options.engine ?? 0 }, options.maxModelLen)
  const cluster = registerClusterMetrics(registry)

  const windowSeconds = options.rateWindowSeconds ?? 10
  const tokenRate = new RateWindow(windowSeconds, now)
  const requestRate = new RateWindow(windowSeconds, now)
  const queueDepth = cluster.requestQueueDepth.labels({ replica })
  const tokensPerSecond = cluster.tokensPerSecond.labels({ replica })
  const requestsPerSecond = cluster.requestsPerSecond.labels({ replica })
  queueDepth.set(0)
  const gpuLabels = new Map<string, { rank: string; tp_group: string; pp_stage: string }>()

  return {
    setSchedulerState: ({ running, waiting, kvCacheUsage }) => {
      vllm.requestsRunning.set(running)
      vllm.requestsWaiting.set(waiting)
      vllm.kvCacheUsage.set(kvCacheUsage)
      queueDepth.set(waiting)
    },
    observeStep: (step) => {
      vllm.promptTokens.inc(step.promptTokens)
      vllm.generationTokens.inc(step.generationTokens)
      vllm.preemptions.inc(step.preemptions ?? 0)
      vllm.prefixCacheQueries.inc(step.prefixCacheQueries ?? 0)
      vllm.prefixCacheHits.inc(step.prefixCacheHits ?? 0)
      vllm.iterationTokens.observe(step.promptTokens + step.generationTokens)
      tokenRate.add(step.promptTokens + step.generationTokens)
    },
    observeTimeToFirstToken: (seconds) => vllm.timeToFirstToken.observe(seconds),
    observeInterTokenLatency: (seconds) => vllm.interTokenLatency.observe(seconds),
    onRequestFinished: (request) => {
      vllm.requestSuccess[request.finishedReason].inc()
      vllm.e2eRequestLatency.observe(request.e2eSeconds)
      vllm.requestQueueTime.observe(request.queueSeconds)
      vllm.requestPrefillTime.observe(request.prefillSeconds)
      vllm.requestDecodeTime.observe(request.decodeSeconds)
      vllm.requestInferenceTime.observe(request.prefillSeconds + request.decodeSeconds)
      vllm.requestPromptTokens.observe(request.promptTokens)
      vllm.requestGenerationTokens.observe(request.generationTokens)
      // vLLM's mean time per output token leaves out the first token, which prefill produced
      vllm.requestTimePerOutputToken.observe(
        request.generationTokens > 1 ? request.decodeSeconds / (request.generationTokens - 1) : 0
      )
      if (request.maxTokens !== undefined) vllm.requestMaxTokens.observe(request.maxTokens)
      requestRate.add(1)
    },
    reportGpu: (gpu) => {
      const rank = String(gpu.rank)
      const labels = { rank, tp_group: String(gpu.tpGroup), pp_stage: String(gpu.ppStage) }
      const previous = gpuLabels.get(rank)
      // after a re-layout the rank may sit in another group: keep one series per rank
      if (previous && (previous.tp_group !== labels.tp_group || previous.pp_stage !== labels.pp_stage)) {
        cluster.gpuUtilization.remove(previous)
      }
      gpuLabels.set(rank, labels)
      cluster.gpuUtilization.set(labels, gpu.utilization)
      cluster.gpuMemoryUsed.set({ rank }, gpu.memoryUsedBytes)
      cluster.gpuMemoryTotal.set({ rank }, gpu.memoryTotalBytes)
    },
    onGpuFailure: (rank) => {
      const key = String(rank)
      cluster.gpuFailures.inc({ rank: key })
      const labels = gpuLabels.get(key)
      if (labels) {
        cluster.gpuUtilization.remove(labels)
        cluster.gpuMemoryUsed.remove({ rank: key })
        cluster.gpuMemoryTotal.remove({ rank: key })
        gpuLabels.delete(key)
      }
    },
    observeAllReduce: (layer, latencyMs) => cluster.tpAllreduceLatencyMs.observe({ layer: String(layer) }, latencyMs),
    observePipelineTransfer: (stage, latencyMs) =>
      cluster.ppTransferLatencyMs.observe({ stage: String(stage) }, latencyMs),
    addCommunicationBytes: (rank, bytes) => cluster.communicationVolumeGb.inc({ rank: String(rank) }, bytes / 1e9),
    onReplicaFailover: (failedReplica) => cluster.replicaFailovers.inc({ replica: failedReplica }),
    onCheckpointOperation: () => cluster.checkpointOperations.inc(),
    render: () => {
      // the rate gauges are computed when scraped, so they decay while the replica is idle
      tokensPerSecond.set(tokenRate.perSecond())
      requestsPerSecond.set(requestRate.perSecond())
      return registry.metrics()
    },
    contentType: registry.contentType
  }
}

/** The engine's metrics as an Effect service. */
export class Metrics extends Context.Tag("Tessera/Metrics")<Metrics, ServerMetrics>() {
  static readonly layer = (options: ServerMetricsOptions) => Layer.sync(Metrics, () => makeServerMetrics(options))
}
