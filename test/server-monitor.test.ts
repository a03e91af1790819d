import { Context, Effect, Exit, Layer, Scope, Stream } from "effect"
import { describe, expect, it } from "vitest"
import { Scheduler, type SchedulerService } from "../src/effects/Scheduler.ts"
import { Engine, type EngineService } from "../src/engine/Engine.ts"
import { Metrics } from "../src/metrics/serverMetrics.ts"
import { ServerConfig, type ServerOptions } from "../src/server/config.ts"
import { decideReadiness, EngineMonitor, type EngineMonitorService } from "../src/server/engineMonitor.ts"
import { Lifecycle, type LifecycleService } from "../src/server/lifecycle.ts"

/**
 * Readiness against an engine that can be made to stall: the monitor must say "not ready"
 * when work is pending and nothing moves, whatever the HTTP side would still answer.
 */

const stallSeconds = 0.25

/** a scheduler whose state the test sets; it changes only when the test says the engine stepped */
const fakeScheduler = () => {
  const state = { numRunning: 0, numWaiting: 0, kvCacheUsage: 0, numPreemptions: 0, pending: false }
  const core = {
    getRequest: () => undefined,
    get hasUnfinishedRequests() {
      return state.pending
    },
    stats: () => ({ ...state, prefixCacheQueriedTokens: 0, prefixCacheHitTokens: 0 })
  }
  return { state, service: { core } as unknown as SchedulerService }
}

/** an engine whose warm-up token comes out when `release` is called */
const fakeEngine = () => {
  let release: () => void = () => {}
  const released = new Promise<void>((resolve) => (release = resolve))
  const service = {
    generate: () =>
      Effect.succeed({
        requestId: "warm-up",
        stream: Stream.fromEffect(Effect.promise(() => released)).pipe(Stream.as({ index: 0, text: "", tokenIds: [1], finishReason: "length" as const }))
      }),
    abort: () => Effect.void
  } satisfies EngineService
  return { service, release: () => release() }
}

const start = async () => {
  const scheduler = fakeScheduler()
  const engine = fakeEngine()
  const layer = EngineMonitor.layer.pipe(
    Layer.provideMerge(Lifecycle.layer),
    Layer.provide(Layer.succeed(Scheduler, scheduler.service)),
    Layer.provide(Layer.succeed(Engine, engine.service)),
    Layer.provide(Metrics.layer({ modelName: "m", maxModelLen: 64 })),
    Layer.provide(Layer.succeed(ServerConfig, { engineStallSeconds: stallSeconds } as ServerOptions))
  )
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
  const monitor: EngineMonitorService = Context.get(context, EngineMonitor)
  const lifecycle: LifecycleService = Context.get(context, Lifecycle)
  return {
    scheduler,
    engine,
    monitor,
    lifecycle,
    readiness: () => Effect.runPromise(monitor.readiness),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe("readiness", () => {
  it("waits for the warm-up token", async () => {
    const m = await start()
    try {
      expect(await m.readiness()).toMatchObject({ ready: false, reason: expect.stringContaining("warm-up") })
      m.engine.release()
      await sleep(20)
      expect((await m.readiness()).ready).toBe(true)
    } finally {
      await m.close()
    }
  })

  it("fails while work is pending and the engine makes no progress, and recovers when it moves", async () => {
    const m = await start()
    try {
      m.engine.release()
      await sleep(20)
      m.scheduler.state.pending = true
      m.scheduler.state.numRunning = 1
      await sleep(100)
      expect((await m.readiness()).ready).toBe(true)
      await sleep(stallSeconds * 1000 + 150)
      expect(await m.readiness()).toMatchObject({ ready: false, reason: expect.stringContaining("no progress") })
      // a step: the scheduler's state changes, seen at the next poll
      m.scheduler.state.kvCacheUsage = 0.5
      await sleep(120)
      expect((await m.readiness()).ready).toBe(true)
      // a token is progress too
      await sleep(stallSeconds * 1000 + 150)
      expect((await m.readiness()).ready).toBe(false)
      m.monitor.onProgress()
      expect((await m.readiness()).ready).toBe(true)
      // an idle engine is not stuck, however long it idles
      m.scheduler.state.pending = false
      await sleep(stallSeconds * 1000 + 150)
      expect((await m.readiness()).ready).toBe(true)
    } finally {
      await m.close()
    }
  })

  it("fails while draining", async () => {
    const m = await start()
    try {
      m.engine.release()
      await sleep(20)
      await Effect.runPromise(m.lifecycle.drain(0))
      expect(await m.readiness()).toMatchObject({ ready: false, reason: "draining for shutdown" })
    } finally {
      await m.close()
    }
  })

  it("decides from its inputs in order: draining, warm-up, stall", () => {
    const base = { warmedUp: true, draining: false, pendingWork: true, secondsSinceProgress: 1, stallSeconds: 30 }
    expect(decideReadiness(base).ready).toBe(true)
    expect(decideReadiness({ ...base, secondsSinceProgress: 31 }).ready).toBe(false)
    expect(decideReadiness({ ...base, secondsSinceProgress: 31, pendingWork: false }).ready).toBe(true)
    expect(decideReadiness({ ...base, warmedUp: false }).reason).toContain("warm-up")
    expect(decideReadiness({ ...base, warmedUp: false, draining: true }).reason).toContain("draining")
  })
})

describe("admission", () => {
  it("counts in-flight requests, refuses new ones while draining, and drains when the last one ends", async () => {
    const m = await start()
    try {
      const release = await Effect.runPromise(m.lifecycle.admit)
      expect(await Effect.runPromise(m.lifecycle.inFlight)).toBe(1)
      const drained = Effect.runPromise(m.lifecycle.drain(5))
      await sleep(20)
      const refused = await Effect.runPromise(Effect.flip(m.lifecycle.admit))
      expect(refused._tag).toBe("Unavailable")
      await Effect.runPromise(release)
      await Effect.runPromise(release) // idempotent: a second release must not count twice
      expect(await drained).toEqual({ completed: true, abandoned: 0 })
    } finally {
      await m.close()
    }
  })

  it("gives up at the deadline with the requests still in flight", async () => {
    const m = await start()
    try {
      await Effect.runPromise(m.lifecycle.admit)
      expect(await Effect.runPromise(m.lifecycle.drain(0.05))).toEqual({ completed: false, abandoned: 1 })
    } finally {
      await m.close()
    }
  })
})
