import { Context, Effect, Layer } from "effect"
import type { Executor, ExecutorError } from "../engine/executor.ts"

/**
 * The executor the engine drives (CPU pipeline or GPU workers), as a service so the engine
 * does not know which one it got.
 */
export class ExecutorService extends Context.Tag("Tessera/Executor")<ExecutorService, Executor>() {
  /** an executor built elsewhere; the caller closes it */
  static readonly layer = (executor: Executor): Layer.Layer<ExecutorService> => Layer.succeed(ExecutorService, executor)

  /** an executor acquired by this layer and closed when its scope ends */
  static readonly scoped = <E>(acquire: Effect.Effect<Executor, E>): Layer.Layer<ExecutorService, E> =>
    Layer.scoped(
      ExecutorService,
      Effect.acquireRelease(acquire, (executor) => executor.close()),
    )
}

export type { Executor, ExecutorError }
