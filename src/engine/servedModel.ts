import { Context, Data, Effect, Layer } from "effect"
import type { EngineFlags } from "../cli/engineFlags.ts"
import { embeddedModel } from "../cli/engineFlags.ts"
import { ExecutorService } from "../effects/ExecutorService.ts"
import type { ModelConfig } from "../model/config.ts"
import { tokenizerDetokenizer } from "../sampling/detokenizer.ts"
import { loadPlugin } from "../stages/plugin.ts"
import { parsePluginSpec } from "../stages/plugin.ts"
import { loadTokenizer, type TextTokenizer } from "../tokenizer/tokenizer.ts"
import type { BlockManager } from "../effects/BlockManager.ts"
import type { Scheduler } from "../effects/Scheduler.ts"
import { Engine, type StepStats } from "./Engine.ts"
import { progressReporter } from "../cli/progress.ts"
import { deviceOptions } from "./deviceProvider.ts"
import { loadModelExecutor, type ModelExecutor } from "./modelExecutor.ts"
import { readModelConfig } from "../model/config.ts"

export class EngineStartError extends Data.TaggedError("EngineStartError")<{ readonly message: string }> {}

/** What the front ends (server, generate) know about the model being served. */
export interface ServedModelShape {
  readonly dir: string
  readonly config: ModelConfig
  readonly tokenizer: TextTokenizer
  readonly executor: ModelExecutor
  readonly maxModelLen: number
  readonly eosTokenIds: ReadonlyArray<number>
}

export class ServedModel extends Context.Tag("Tessera/ServedModel")<ServedModel, ServedModelShape>() {}

const messageOf = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

const checkLayout = (flags: EngineFlags): Effect.Effect<void, EngineStartError> => {
  if ((flags.tensorParallelSize ?? 1) > 1 || (flags.pipelineParallelSize ?? 1) > 1) {
    return Effect.fail(
      new EngineStartError({ message: "--tensor-parallel-size / --pipeline-parallel-size > 1 are not available on this build yet; use 1" })
    )
  }
  return Effect.void
}

/** the model, its tokenizer and a CPU executor, acquired for the layer's scope */
const servedModel = (flags: EngineFlags) =>
  Effect.gen(function* () {
    yield* checkLayout(flags)
    const dir = flags.model ?? embeddedModel
    const plugins = yield* Effect.forEach(flags.pipelinePlugin ?? [], (spec) =>
      Effect.try({ try: () => parsePluginSpec(spec), catch: (e) => new EngineStartError({ message: `--pipeline-plugin ${spec}: ${messageOf(e)}` }) }).pipe(
        Effect.flatMap(({ specifier, options }) => loadPlugin(specifier, options)),
        Effect.mapError((e) => new EngineStartError({ message: e.message }))
      )
    )
    const executor = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () =>
          loadModelExecutor(dir, {
            ...(await deviceOptions(flags, readModelConfig(dir), (line) => process.stderr.write(`${line}\n`))),
            loadFormat: flags.loadFormat,
            onLoadProgress: progressReporter("loading weights", { name: "GB", scale: 1e9, digits: 2 }, { quietWhenFast: true }),
            maxModelLen: flags.maxModelLen,
            maxNumSeqs: flags.maxNumSeqs,
            maxNumBatchedTokens: flags.maxNumBatchedTokens,
            blockSize: flags.blockSize,
            kvCacheBytes: flags.kvCacheMemory,
            threads: flags.threads,
            plugins
          }),
        catch: (e) => new EngineStartError({ message: messageOf(e) })
      }),
      // the executor closes the provider it was given only when it made it: this one is ours
      (executor) => Effect.zipRight(executor.close(), Effect.sync(() => executor.provider.close()))
    )
    const tokenizer = yield* Effect.try({ try: () => loadTokenizer(dir), catch: (e) => new EngineStartError({ message: messageOf(e) }) })
    const { config, generationConfig } = executor.model
    const eosTokenIds = generationConfig?.eosTokenIds?.length ? generationConfig.eosTokenIds : config.eosTokenIds
    return { dir, config, tokenizer, executor, maxModelLen: executor.maxModelLen, eosTokenIds } satisfies ServedModelShape
  })

/** The served model and the engine loop over it. */
export interface EngineHooks {
  /** bound once the model is loaded (metrics need its context length) */
  readonly onStep?: (served: ServedModelShape) => (stats: StepStats) => void
}

export const engineLayer = (
  flags: EngineFlags,
  maxQueuedRequests = 1024,
  hooks: EngineHooks = {}
): Layer.Layer<Engine | Scheduler | BlockManager | ServedModel, EngineStartError> => {
  const model = Layer.scoped(ServedModel, servedModel(flags))
  const engine = Layer.unwrapEffect(
    Effect.map(ServedModel, (served) =>
      Engine.live({
        maxNumSeqs: served.executor.maxNumSeqs,
        maxNumBatchedTokens: served.executor.maxNumBatchedTokens,
        maxModelLen: served.maxModelLen,
        enableChunkedPrefill: true,
        enablePrefixCaching: flags.enablePrefixCaching !== "false",
        asyncScheduling: flags.asyncScheduling === undefined ? served.executor.launchesAsync === true : flags.asyncScheduling === "true",
        maxQueuedRequests,
        eosTokenIds: served.eosTokenIds,
        detokenizer: tokenizerDetokenizer(served.tokenizer),
        onStep: hooks.onStep?.(served)
      }).pipe(
        Layer.provide(ExecutorService.layer(served.executor)),
        Layer.mapError((e) => new EngineStartError({ message: e.message }))
      )
    )
  )
  return Layer.provideMerge(engine, model)
}
