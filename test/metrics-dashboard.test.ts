import { describe, expect, it } from "vitest"
import dashboard from "../bench/grafana/tessera.json" with { type: "json" }
import { makeServerMetrics } from "../src/metrics/serverMetrics.ts"

/**
 * The Grafana dashboard must only query series the server exposes: a renamed metric would
 * otherwise leave a panel silently empty.
 */

interface Panel {
  readonly type: string
  readonly title: string
  readonly id: number
  readonly gridPos: { x: number; y: number; w: number; h: number }
  readonly datasource?: { uid: string }
  readonly targets?: ReadonlyArray<{ expr: string }>
}
const panels = dashboard.panels as ReadonlyArray<Panel>
const queries = panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel: panel.title, expr: target.expr })))

/** metric names in a PromQL expression: identifiers that are not functions, labels or variables */
const metricNames = (expr: string): Array<string> => {
  const stripped = expr
    .replace(/\{[^}]*\}/g, "") // label matchers
    .replace(/\b(by|without)\s*\([^)]*\)/g, "") // grouping labels
    .replace(/\[[^\]]*\]/g, "") // range selectors
    .replace(/\$\w+/g, "") // dashboard variables
  return [...stripped.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)].filter((m) => !m[2]).map((m) => m[1])
}

/** every sample name the server can expose, with every family made to carry a sample */
const exposedSampleNames = async (): Promise<Set<string>> => {
  const metrics = makeServerMetrics({ modelName: "m", maxModelLen: 128 })
  metrics.reportGpu({ rank: 0, tpGroup: 0, ppStage: 0, utilization: 0.5, memoryUsedBytes: 1, memoryTotalBytes: 2 })
  metrics.observeAllReduce(0, 0.1)
  metrics.observePipelineTransfer(0, 0.1)
  metrics.addCommunicationBytes(0, 1)
  metrics.onGpuFailure(1)
  metrics.onReplicaFailover("r")
  const text = await metrics.render()
  return new Set(text.split("\n").filter((line) => line && !line.startsWith("#")).map((line) => line.split(/[{ ]/)[0]))
}

describe("Grafana dashboard", () => {
  it("queries only series the server exposes", async () => {
    const exposed = await exposedSampleNames()
    expect(queries.length).toBeGreaterThan(20)
    for (const { panel, expr } of queries) {
      const names = metricNames(expr)
      expect(names.length, `${panel}: ${expr}`).toBeGreaterThan(0)
      for (const name of names) expect(exposed, `${panel}: ${name}`).toContain(name)
    }
  })

  it("covers the serving, cache and GPU views", () => {
    const used = new Set(queries.flatMap(({ expr }) => metricNames(expr)))
    for (const name of [
      "vllm:request_success_total",
      "vllm:time_to_first_token_seconds_bucket",
      "vllm:inter_token_latency_seconds_bucket",
      "vllm:e2e_request_latency_seconds_bucket",
      "vllm:num_requests_running",
      "vllm:num_requests_waiting",
      "vllm:kv_cache_usage_perc",
      "vllm:prefix_cache_hits_total",
      "vllm:generation_tokens_total",
      "gpu_utilization",
      "gpu_memory_used",
      "tp_allreduce_latency_ms_bucket",
      "pp_transfer_latency_ms_bucket"
    ]) {
      expect(used, name).toContain(name)
    }
  })

  it("reads every panel from the datasource variable and lays panels out on the 24-column grid", () => {
    const ids = panels.map((panel) => panel.id)
    expect(new Set(ids).size).toBe(ids.length)
    expect(dashboard.templating.list.map((variable) => variable.name)).toContain("datasource")
    for (const panel of panels.filter((p) => p.type !== "row")) {
      expect(panel.datasource?.uid, panel.title).toBe("${datasource}")
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24)
    }
  })
})
