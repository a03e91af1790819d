import { Effect, Layer, Schedule } from "effect"
import { EngineMonitor } from "./engineMonitor.ts"

/**
 * A full garbage collection once the engine has gone idle after work. JavaScriptCore
 * collects lazily and an idle server allocates almost nothing, so after a burst of requests
 * the process would keep its peak RSS (about 300 MiB above baseline after 200 concurrent
 * streams on the embedded model) until the next burst. Collecting once per idle period
 * returns it; doing it only when idle keeps the pause off every request's latency.
 */

/** quiet this long before collecting: a lull between requests of one burst should not pay a GC */
const idleSecondsBeforeCollect = 1

export const IdleCollector = Layer.scopedDiscard(
  Effect.gen(function* () {
    const monitor = yield* EngineMonitor
    let collectedAt = monitor.activity()
    const check = Effect.sync(() => {
      if (monitor.activity() === collectedAt || monitor.idleSeconds() < idleSecondsBeforeCollect) return
      collectedAt = monitor.activity()
      Bun.gc(true)
    })
    yield* Effect.forkScoped(Effect.repeat(check, Schedule.spaced("250 millis")))
  })
)
