import { Context, Data, Effect, Layer } from "effect"
import type { RequestId } from "../engine/request.ts"
import {
  SchedulerCore,
  type SchedulerConfig,
  type SchedulerOutput,
  type SchedulerStats,
} from "../engine/scheduler.ts"
import { BlockManager } from "./BlockManager.ts"

export class SchedulerConfigError extends Data.TaggedError("SchedulerConfigError")<{ readonly message: string }> {}

export interface SchedulerService {
  /** the synchronous core, for the engine loop and tests */
  readonly core: SchedulerCore
  readonly addRequest: (requestId: string, promptTokenIds: ArrayLike<number>, n: number) => Effect.Effect<RequestId[]>
  readonly finishRequest: (requestId: RequestId) => Effect.Effect<void>
  readonly schedule: () => Effect.Effect<SchedulerOutput>
  readonly update: (output: SchedulerOutput, sampledTokenIds: ArrayLike<number>) => Effect.Effect<void>
  readonly stats: Effect.Effect<SchedulerStats>
}

/** Continuous batching over the paged KV cache: one StepPlan per iteration. */
export class Scheduler extends Context.Tag("Tessera/Scheduler")<Scheduler, SchedulerService>() {
  static readonly make = (core: SchedulerCore): SchedulerService => ({
    core,
    addRequest: Effect.fn("Scheduler.addRequest")(function* (requestId: string, prompt: ArrayLike<number>, n: number) {
      return core.addRequest(requestId, prompt, n)
    }),
    finishRequest: Effect.fn("Scheduler.finishRequest")(function* (requestId: RequestId) {
      core.finishRequest(requestId)
    }),
    schedule: Effect.fn("Scheduler.schedule")(function* () {
      return core.schedule()
    }),
    update: Effect.fn("Scheduler.update")(function* (output: SchedulerOutput, sampled: ArrayLike<number>) {
      core.update(output, sampled)
    }),
    stats: Effect.sync(() => core.stats()),
  })

  static readonly layer = (config: SchedulerConfig): Layer.Layer<Scheduler, SchedulerConfigError, BlockManager> =>
    Layer.effect(
      Scheduler,
      Effect.flatMap(BlockManager, ({ kvCache }) =>
        Effect.try({
          try: () => Scheduler.make(new SchedulerCore(config, kvCache)),
          catch: (e) => new SchedulerConfigError({ message: e instanceof Error ? e.message : String(e) }),
        }),
      ),
    )
}
