import { Counter, Gauge, Histogram, type Registry } from "prom-client"

/**
 * Tessera's own families: the replica, GPU and collective-communication view of DESIGN.md
 * ("Prometheus metrics show all of it"), under the names the seed's analysis uses.
 *
 * The GPU families (`gpu_utilization`, `gpu_memory_used`, `gpu_memory_total`) are registered
 * on every backend but only ever set from a GPU backend's report: on the CPU backend they
 * expose their HELP and TYPE and no samples, so nothing reads a made-up number as a GPU's.
 */

/** Collective latencies: from a few microseconds over NVLink to seconds when a link is sick. */
const collectiveLatencyMsBuckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000]

export interface ClusterMetrics {
  readonly requestQueueDepth: Gauge<"replica">
  readonly tokensPerSecond: Gauge<"replica">
  readonly requestsPerSecond: Gauge<"replica">
  readonly gpuUtilization: Gauge<"rank" | "tp_group" | "pp_stage">
  readonly gpuMemoryUsed: Gauge<"rank">
  readonly gpuMemoryTotal: Gauge<"rank">
  readonly tpAllreduceLatencyMs: Histogram<"layer">
  readonly ppTransferLatencyMs: Histogram<"stage">
  readonly communicationVolumeGb: Counter<"rank">
  readonly gpuFailures: Counter<"rank">
  readonly replicaFailovers: Counter<"replica">
  readonly checkpointOperations: Counter
}

export const registerClusterMetrics = (registry: Registry): ClusterMetrics => {
  const registers = [registry]
  return {
    requestQueueDepth: new Gauge({
      name: "request_queue_depth",
      help: "Requests admitted by the replica and waiting to be scheduled.",
      labelNames: ["replica"],
      registers
    }),
    tokensPerSecond: new Gauge({
      name: "tokens_per_second",
      help: "Prompt plus generated tokens computed per second, over the recent rate window.",
      labelNames: ["replica"],
      registers
    }),
    requestsPerSecond: new Gauge({
      name: "requests_per_second",
      help: "Requests finished per second, over the recent rate window.",
      labelNames: ["replica"],
      registers
    }),
    gpuUtilization: new Gauge({
      name: "gpu_utilization",
      help: "Fraction of time (0..1) a kernel ran on the GPU, as the GPU backend reports it. No samples on CPU.",
      labelNames: ["rank", "tp_group", "pp_stage"],
      registers
    }),
    gpuMemoryUsed: new Gauge({
      name: "gpu_memory_used",
      help: "Device memory in use, in bytes, as the GPU backend reports it. No samples on CPU.",
      labelNames: ["rank"],
      registers
    }),
    gpuMemoryTotal: new Gauge({
      name: "gpu_memory_total",
      help: "Device memory of the GPU, in bytes, as the GPU backend reports it. No samples on CPU.",
      labelNames: ["rank"],
      registers
    }),
    tpAllreduceLatencyMs: new Histogram({
      name: "tp_allreduce_latency_ms",
      help: "Latency of one tensor-parallel all-reduce, in milliseconds, by decoder layer.",
      labelNames: ["layer"],
      buckets: collectiveLatencyMsBuckets,
      registers
    }),
    ppTransferLatencyMs: new Histogram({
      name: "pp_transfer_latency_ms",
      help: "Latency of one pipeline-parallel activation transfer, in milliseconds, by sending stage.",
      labelNames: ["stage"],
      buckets: collectiveLatencyMsBuckets,
      registers
    }),
    // A counter kept under the seed's name (no `_total`): rate() of it is GB/s per rank.
    communicationVolumeGb: new Counter({
      name: "communication_volume_gb",
      help: "Bytes a rank sent in collectives and pipeline transfers, in GB (1e9 bytes).",
      labelNames: ["rank"],
      registers
    }),
    gpuFailures: new Counter({
      name: "gpu_failures_total",
      help: "GPUs declared lost by the health monitor.",
      labelNames: ["rank"],
      registers
    }),
    replicaFailovers: new Counter({
      name: "replica_failovers_total",
      help: "Requests the router moved away from a replica that could not serve them.",
      labelNames: ["replica"],
      registers
    }),
    checkpointOperations: new Counter({
      name: "checkpoint_operations_total",
      help: "Request checkpoints written or restored.",
      registers
    })
  }
}
