import { Context, Deferred, Effect, Layer, Ref } from "effect"
import { Unavailable } from "./errors.ts"

/**
 * Admission and graceful shutdown. Every generation request is admitted here and released
 * when its response is complete (for a stream: when its last event is written). Draining
 * refuses new requests with 503 while the admitted ones finish, so a load balancer that
 * sends SIGTERM loses no request it had already placed.
 */
export interface LifecycleService {
  /** fails with 503 while draining; the returned release is idempotent */
  readonly admit: Effect.Effect<Effect.Effect<void>, Unavailable>
  readonly isDraining: Effect.Effect<boolean>
  readonly inFlight: Effect.Effect<number>
  /** stops admitting, then waits for in-flight requests or the deadline, whichever is first */
  readonly drain: (timeoutSeconds: number) => Effect.Effect<{ readonly completed: boolean; readonly abandoned: number }>
}

export class Lifecycle extends Context.Tag("Tessera/Lifecycle")<Lifecycle, LifecycleService>() {
  static readonly layer = Layer.effect(
    Lifecycle,
    Effect.gen(function* () {
      const state = yield* Ref.make({ draining: false, inFlight: 0 })
      // completed whenever draining and nothing is in flight; replaced never: drain happens once
      const idle = yield* Deferred.make<void>()
      const signalIfIdle = Effect.flatMap(Ref.get(state), (s) => (s.draining && s.inFlight === 0 ? Deferred.succeed(idle, undefined) : Effect.void))

      const admit = Effect.gen(function* () {
        const admitted = yield* Ref.modify(state, (s) => (s.draining ? [false, s] : [true, { ...s, inFlight: s.inFlight + 1 }]))
        if (!admitted) return yield* new Unavailable({ message: "The server is shutting down and accepts no new requests." })
        let released = false
        return Effect.suspend(() => {
          if (released) return Effect.void
          released = true
          return Ref.update(state, (s) => ({ ...s, inFlight: s.inFlight - 1 })).pipe(Effect.zipRight(signalIfIdle))
        })
      })

      const drain = (timeoutSeconds: number) =>
        Effect.gen(function* () {
          yield* Ref.update(state, (s) => ({ ...s, draining: true }))
          yield* signalIfIdle
          const completed = yield* Deferred.await(idle).pipe(
            Effect.as(true),
            Effect.timeoutTo({ duration: `${timeoutSeconds} seconds`, onSuccess: () => true, onTimeout: () => false })
          )
          return { completed, abandoned: (yield* Ref.get(state)).inFlight }
        })

      return {
        admit,
        isDraining: Effect.map(Ref.get(state), (s) => s.draining),
        inFlight: Effect.map(Ref.get(state), (s) => s.inFlight),
        drain
      } satisfies LifecycleService
    })
  )
}

/** resolves on the first SIGTERM or SIGINT (the signals a supervisor or a terminal sends) */
export const shutdownSignal: Effect.Effect<string> = Effect.async<string>((resume) => {
  const on = (signal: string) => () => resume(Effect.succeed(signal))
  const handlers = { SIGTERM: on("SIGTERM"), SIGINT: on("SIGINT") }
  process.once("SIGTERM", handlers.SIGTERM)
  process.once("SIGINT", handlers.SIGINT)
  return Effect.sync(() => {
    process.off("SIGTERM", handlers.SIGTERM)
    process.off("SIGINT", handlers.SIGINT)
  })
})
