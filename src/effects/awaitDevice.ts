import { Effect } from "effect"

/**
 * Waits for work the device runs on its own (a replayed CUDA graph, the copies after it) by
 * polling `isDone`, yielding to the other fibers between polls. A blocking wait would hold the
 * JavaScript thread for the whole step, so the host work of the step before (each request's
 * stream taking its tokens, the server writing them out) would run only after the device
 * finished, adding to every step; with this it runs while the device computes.
 */
export const awaitDevice = (isDone: () => boolean): Effect.Effect<void> =>
  Effect.sync(isDone).pipe(
    Effect.tap((done) => (done ? Effect.void : Effect.yieldNow())),
    Effect.repeat({ until: (done) => done }),
    Effect.asVoid
  )
