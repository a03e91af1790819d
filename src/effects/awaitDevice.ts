import { Effect } from "effect"

/**
 * Waits for work the device runs on its own (a replayed CUDA graph, the copies after it) by
 * polling `isDone`, letting the event loop run between polls. A blocking wait would hold the
 * JavaScript thread for the whole step, so the host work of the step before (each request's
 * stream taking its tokens, the server writing them out) would run only after the device
 * finished, adding to every step; with this it runs while the device computes.
 *
 * The polls are macrotasks (setImmediate), outside Effect's scheduler: the other fibers run in
 * the microtask turns between them, and the fiber waiting here is resumed once. A loop of
 * Effect.yieldNow cost 20 us a step and 5-30 us a poll in Bun (against 8 us and under 1 us
 * here), all of it between the device's end of one step and the launch of the next.
 */
export const awaitDevice = (isDone: () => boolean): Effect.Effect<void> =>
  Effect.suspend(() =>
    isDone()
      ? Effect.void
      : Effect.async<void>((resume) => {
          let waiting = true
          const poll = () => {
            if (!waiting) return
            let done = false
            try {
              done = isDone()
            } catch (cause) {
              waiting = false
              resume(Effect.die(cause))
              return
            }
            if (!done) return void setImmediate(poll)
            waiting = false
            resume(Effect.void)
          }
          setImmediate(poll)
          // interrupted: no further polls
          return Effect.sync(() => {
            waiting = false
          })
        })
  )
