import { HttpServer } from "@effect/platform"
import { BunHttpServer } from "@effect/platform-bun"
import { Console, Context, Effect, Layer } from "effect"
import type { EngineFlags } from "../cli/engineFlags.ts"
import type { StepStats } from "../engine/Engine.ts"
import { engineLayer, ServedModel } from "../engine/servedModel.ts"
import { makeServerMetrics, Metrics } from "../metrics/serverMetrics.ts"
import { ServerConfig, type ServerOptions } from "./config.ts"
import { EngineMonitor } from "./engineMonitor.ts"
import { EventLoopFairScheduler } from "./eventLoopScheduler.ts"
import { IdleCollector } from "./idleCollector.ts"
import { Lifecycle, shutdownSignal } from "./lifecycle.ts"
import { ModelCatalog } from "./models.ts"
import { httpApp } from "./routes.ts"

/**
 * The serving process as layers: the engine over the model, the metrics, the monitor, and
 * the HTTP server on Bun. `serve` runs them until a shutdown signal, then drains.
 */

/** Bun's own cap answers with a bare 413 of its own: keep it above ours, which answers in JSON */
const bunBodyLimit = (ours: number) => Math.max(ours + 1, 128 * 1024 * 1024)

/** most fiber work between two turns of the event loop (see EventLoopFairScheduler) */
const eventLoopSliceMs = 2

/** after the last in-flight response ended, a moment for Bun to flush its bytes before the process exits */
const flushGrace = "100 millis"

/**
 * The engine reports each step to the metrics, but the metrics need the loaded model (its
 * context length) and so are built after the engine: the engine's hook writes to this sink,
 * which the metrics layer points at itself once it exists.
 */
interface StepSink {
  observe: (stats: StepStats) => void
}

const metricsLayer = (steps: StepSink) =>
  Layer.effect(
    Metrics,
    Effect.gen(function* () {
      const { servedModelName } = yield* ServerConfig
      const { maxModelLen } = yield* ServedModel
      const metrics = makeServerMetrics({ modelName: servedModelName, maxModelLen })
      steps.observe = metrics.observeStep
      return metrics
    })
  )

const listening = HttpServer.addressWith((address) =>
  Effect.flatMap(ServerConfig, ({ servedModelName }) =>
    Console.log(
      address._tag === "TcpAddress"
        ? `tessera serve: listening on http://${address.hostname}:${address.port} (model ${servedModelName})`
        : `tessera serve: listening on ${address.path} (model ${servedModelName})`
    )
  )
)

export const serverLayer = (options: ServerOptions, flags: EngineFlags) => {
  const steps: StepSink = { observe: () => {} }
  const http = Layer.effectDiscard(listening).pipe(
    Layer.provide(Layer.unwrapEffect(Effect.map(httpApp, (app) => HttpServer.serve(app)))),
    Layer.provide(BunHttpServer.layer({ hostname: options.host, port: options.port, idleTimeout: 0, maxRequestBodySize: bunBodyLimit(options.maxRequestBodyBytes) }))
  )
  const services = Layer.mergeAll(IdleCollector, ModelCatalog.layer).pipe(
    Layer.provideMerge(EngineMonitor.layer),
    Layer.provideMerge(metricsLayer(steps)),
    Layer.provideMerge(engineLayer(flags, options.maxWaitingRequests, { onStep: () => (stats) => steps.observe(stats) })),
    Layer.provideMerge(Lifecycle.layer),
    Layer.provideMerge(Layer.succeed(ServerConfig, options))
  )
  return Layer.provideMerge(http, services)
}

/**
 * Serves until SIGTERM or SIGINT, then drains: new requests get 503 while in-flight ones
 * finish, up to the drain timeout; a second signal stops waiting. Layers close in reverse:
 * the listener first, then the engine.
 */
const serveUntilDrained = (options: ServerOptions, flags: EngineFlags) =>
  Effect.scoped(
    Effect.gen(function* () {
      const lifecycle = Context.get(yield* Layer.build(serverLayer(options, flags)), Lifecycle)
      const signal = yield* shutdownSignal
      yield* Console.log(`tessera serve: ${signal}: draining (${yield* lifecycle.inFlight} in flight, up to ${options.drainTimeoutSeconds} s)`)
      const drained = yield* lifecycle
        .drain(options.drainTimeoutSeconds)
        .pipe(Effect.raceFirst(Effect.zipRight(shutdownSignal, Effect.map(lifecycle.inFlight, (abandoned) => ({ completed: false, abandoned })))))
      yield* Effect.sleep(flushGrace)
      yield* Console.log(
        drained.completed ? "tessera serve: drained, exiting" : `tessera serve: drain cut short with ${drained.abandoned} requests in flight, exiting`
      )
    })
  )

export const serve = (options: ServerOptions, flags: EngineFlags) =>
  Effect.withScheduler(serveUntilDrained(options, flags), new EventLoopFairScheduler(eventLoopSliceMs))
