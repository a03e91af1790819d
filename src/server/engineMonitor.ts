import { Context, Effect, Layer, Schedule, Stream } from "effect"
import { Engine } from "../engine/Engine.ts"
import { RequestId } from "../engine/request.ts"
import { Scheduler } from "../effects/Scheduler.ts"
import { Metrics } from "../metrics/serverMetrics.ts"
import { decodeSamplingParams } from "../sampling/SamplingParams.ts"
import { ServerConfig } from "./config.ts"
import { Lifecycle } from "./lifecycle.ts"

/**
 * Watches the engine from outside its loop: publishes the scheduler's state to the metrics,
 * notices when queued sequences first run (the end of their queue time), and decides
 * readiness. The engine counts as making progress when a token comes out or the scheduler's
 * state changes; pending work with no progress for `engineStallSeconds` means a stuck or dead
 * loop, whatever the HTTP side still answers.
 */

export const now = (): number => performance.now() / 1000

/** how often the scheduler is sampled: the resolution of queue times and of the gauges */
const pollInterval = "50 millis"

/** when the scheduler first ran a sequence; filled in by the monitor or, failing that, by its first token */
export interface SequenceTiming {
  scheduledAt: number | undefined
}

export interface Readiness {
  readonly ready: boolean
  readonly reason: string
}

export interface ReadinessInputs {
  readonly warmedUp: boolean
  readonly draining: boolean
  readonly pendingWork: boolean
  readonly secondsSinceProgress: number
  readonly stallSeconds: number
}

export const decideReadiness = (s: ReadinessInputs): Readiness => {
  if (s.draining) return { ready: false, reason: "draining for shutdown" }
  if (!s.warmedUp) return { ready: false, reason: "the engine has not generated its warm-up token yet" }
  if (s.pendingWork && s.secondsSinceProgress > s.stallSeconds) {
    return { ready: false, reason: `the engine has made no progress for ${s.secondsSinceProgress.toFixed(1)} s with work pending` }
  }
  return { ready: true, reason: "ready" }
}

export interface EngineMonitorService {
  /** tracks a sequence until the scheduler runs it; returns the function that stops tracking */
  readonly watch: (sequenceId: string, timing: SequenceTiming) => () => void
  /** a token came out of the engine */
  readonly onProgress: () => void
  /** the last time the scheduler was sampled: a sequence seen waiting then was scheduled after it */
  readonly lastPollAt: () => number
  readonly readiness: Effect.Effect<Readiness>
  /** seconds since the engine last made progress, 0 while it has work */
  readonly idleSeconds: () => number
  /** counts progress events: unchanged means no work happened in between */
  readonly activity: () => number
  /** samples the scheduler into the gauges now (also done every poll) */
  readonly publishSchedulerState: Effect.Effect<void>
}

export class EngineMonitor extends Context.Tag("Tessera/EngineMonitor")<EngineMonitor, EngineMonitorService>() {
  static readonly layer = Layer.scoped(
    EngineMonitor,
    Effect.gen(function* () {
      const { core } = yield* Scheduler
      const metrics = yield* Metrics
      const lifecycle = yield* Lifecycle
      const { engineStallSeconds } = yield* ServerConfig
      const watched = new Map<string, SequenceTiming>()
      let warmedUp = false
      let lastProgressAt = now()
      let lastPollAt = now()
      let lastSnapshot = ""
      let activity = 0
      const progress = (at: number) => {
        lastProgressAt = at
        activity++
      }
      const pendingWork = () => core.hasUnfinishedRequests || watched.size > 0

      const publishSchedulerState = Effect.sync(() => {
        const at = now()
        let notAdmitted = 0
        for (const [id, timing] of watched) {
          const request = core.getRequest(RequestId(id))
          if (request === undefined) notAdmitted++
          else if (request.status !== "waiting") {
            timing.scheduledAt ??= at
            watched.delete(id)
          }
        }
        const stats = core.stats()
        // the engine keeps its backlog in its own intake queue: count it as waiting, as vLLM does
        const state = { running: stats.numRunning, waiting: stats.numWaiting + notAdmitted, kvCacheUsage: stats.kvCacheUsage }
        metrics.setSchedulerState(state)
        // only what the loop itself changes: arrivals alone must not look like progress
        const snapshot = `${stats.numRunning}/${stats.numWaiting}/${stats.kvCacheUsage}/${stats.numPreemptions}`
        if (snapshot !== lastSnapshot) progress(at)
        lastSnapshot = snapshot
        lastPollAt = at
      })
      yield* Effect.forkScoped(Effect.repeat(publishSchedulerState, Schedule.spaced(pollInterval)))

      // one token through the whole pipeline before /ready says yes; retried while it fails.
      // Token 0 is in every vocabulary, and what it means does not matter here.
      const engine = yield* Engine
      const warmUp = Effect.gen(function* () {
        const params = yield* decodeSamplingParams({ max_tokens: 1, temperature: 0, ignore_eos: true })
        const { stream } = yield* engine.generate({ promptTokenIds: [0], params })
        yield* Stream.runDrain(stream)
        warmedUp = true
        progress(now())
      }).pipe(
        Effect.tapError((e) => Effect.logWarning(`engine warm-up failed, retrying: ${e.message}`)),
        Effect.retry(Schedule.spaced("1 second"))
      )
      yield* Effect.forkScoped(warmUp)

      return {
        watch: (sequenceId, timing) => {
          watched.set(sequenceId, timing)
          return () => watched.delete(sequenceId)
        },
        onProgress: () => progress(now()),
        idleSeconds: () => (pendingWork() ? 0 : now() - lastProgressAt),
        activity: () => activity,
        lastPollAt: () => lastPollAt,
        publishSchedulerState,
        readiness: Effect.map(lifecycle.isDraining, (draining) =>
          decideReadiness({
            warmedUp,
            draining,
            pendingWork: pendingWork(),
            secondsSinceProgress: now() - lastProgressAt,
            stallSeconds: engineStallSeconds
          })
        )
      } satisfies EngineMonitorService
    })
  )
}
