import { HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import { Metrics } from "../metrics/serverMetrics.ts"
import { EngineMonitor } from "./engineMonitor.ts"
import { Unavailable } from "./errors.ts"

/**
 * Probes for orchestrators. /health is liveness: it answers 200 whenever the process can
 * answer at all. /ready is readiness: 200 only once the engine has produced a token and
 * while its loop keeps making progress, so a stuck engine behind a live HTTP listener is
 * taken out of rotation (and a draining one too).
 */

export const health = Effect.succeed(HttpServerResponse.unsafeJson({ status: "ok" }))

export const ready = Effect.gen(function* () {
  const readiness = yield* Effect.flatMap(EngineMonitor, (monitor) => monitor.readiness)
  if (!readiness.ready) return yield* new Unavailable({ message: `not ready: ${readiness.reason}` })
  return HttpServerResponse.unsafeJson({ status: "ready" })
})

/** Prometheus text; the scheduler gauges are sampled at scrape time, not one poll old */
export const metrics = Effect.gen(function* () {
  const monitor = yield* EngineMonitor
  const registry = yield* Metrics
  yield* monitor.publishSchedulerState
  const text = yield* Effect.promise(() => registry.render())
  return HttpServerResponse.text(text, { contentType: registry.contentType })
})
