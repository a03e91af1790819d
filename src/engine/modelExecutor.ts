import { Context, Effect } from "effect"
import { Communicator, singleRank } from "../effects/Communicator.ts"
import { Device } from "../effects/Device.ts"
import type { KernelProvider } from "../kernels/provider.ts"
import { createWasmProvider } from "../kernels/wasm/provider.ts"
import { numBlocksForBudget } from "../effects/BlockManager.ts"
import { KvCacheStorage } from "../layers/kvCache.ts"
import { singleShard, WeightLoader } from "../layers/shard.ts"
import { parameterCount } from "../model/expectedTensors.ts"
import { openDummyModelDir, openModelDir, type ModelDir, type WeightSource } from "../model/weights.ts"
import type { Logits, StepInput } from "../stages/activations.ts"
import { argmax } from "../stages/sampler.ts"
import type { StepPlan } from "../stages/stepPlan.ts"
import { loadRankPipeline, localDims } from "../stages/rankPipeline.ts"
import { andThen, sequence, type Stage } from "../stages/stage.ts"
import { Workspace } from "../stages/workspace.ts"
import { ExecutorError, type Executor, type StepOutput } from "./executor.ts"

export interface ModelExecutorOptions {
  /** "dummy": random weights from config.json alone, for benchmarks */
  readonly loadFormat?: "auto" | "dummy"
  /** bytes of KV cache (default 256 MiB, never more than the limits below can use) */
  readonly kvCacheBytes?: number
  /** exact number of KV blocks, overriding the budget (tests use it to force preemption) */
  readonly numBlocks?: number
  readonly blockSize?: number
  readonly maxNumBatchedTokens?: number
  readonly maxNumSeqs?: number
  readonly maxModelLen?: number
  readonly threads?: number
  /** logits processors run after lm_head (stage plugins) */
  readonly plugins?: ReadonlyArray<Stage<Logits, Logits>>
  /** an already created provider to run on (the caller keeps ownership) */
  readonly provider?: KernelProvider
  /** called as weights reach the device: bytes so far and in all */
  readonly onLoadProgress?: (bytes: number, totalBytes: number) => void
  /** the weights to load instead of the directory's (e.g. dummy weights made on the device) */
  readonly weights?: WeightSource
  /** runs the steps it can run faster (the CUDA provider's decode graphs), handing the rest back */
  readonly stepRunner?: (parts: StepRunnerParts) => StepRunner
}

/** What a step runner gets of the executor: its buffers and its forward pass. */
export interface StepRunnerParts {
  readonly workspace: Workspace
  /** the forward pass over the plan arrays already in the workspace, services provided */
  readonly forward: (plan: StepPlan) => Effect.Effect<Logits>
  /**
   * the executor's own step, computed at once (upload the plan, run the forward pass), its output
   * handed back behind a wait that is already done, as Executor.launch
   */
  readonly launch: (plan: StepPlan) => Effect.Effect<Effect.Effect<StepOutput, ExecutorError>, ExecutorError>
}

export interface StepRunner {
  /** as Executor's: `onLaunched` once the step is with the device */
  readonly execute: (plan: StepPlan, onLaunched?: () => void) => Effect.Effect<StepOutput, ExecutorError>
  /** as Executor's */
  readonly launch?: (plan: StepPlan) => Effect.Effect<Effect.Effect<StepOutput, ExecutorError>, ExecutorError>
  /** as Executor's: the steps it runs wait for the device without blocking the thread */
  readonly launchesAsync?: boolean
  /** frees what the runner holds; before the workspace goes */
  release(): void
}

export interface ModelExecutor extends Executor {
  readonly model: ModelDir
  readonly provider: KernelProvider
  readonly maxModelLen: number
  readonly maxNumBatchedTokens: number
  readonly maxNumSeqs: number
}

const defaultKvCacheBytes = 256 * 1024 * 1024

/**
 * The CPU executor: one rank holding the whole model in WebAssembly memory, running each
 * step plan through the rank's stage pipeline.
 */
export const loadModelExecutor = async (dir: string, options: ModelExecutorOptions = {}): Promise<ModelExecutor> => {
  const opened = options.loadFormat === "dummy" ? openDummyModelDir(dir) : openModelDir(dir)
  const model = options.weights ? { ...opened, weights: options.weights } : opened
  const { config } = model
  const provider = options.provider ?? (await createWasmProvider({ threads: options.threads }))
  const shard = singleShard
  const dims = localDims(config, shard)
  const blockSize = options.blockSize ?? 16
  const maxModelLen = Math.min(options.maxModelLen ?? 4096, config.maxPositionEmbeddings)
  const maxNumSeqs = options.maxNumSeqs ?? 64
  const maxNumBatchedTokens = Math.max(options.maxNumBatchedTokens ?? 2048, maxNumSeqs)
  const maxBlocksPerSeq = Math.ceil(maxModelLen / blockSize)
  const cacheShape = { numLayers: config.numLayers, blockSize, kvHeads: dims.kvHeads, headDim: dims.headDim, bytesPerElement: provider.memory.floatBytes }
  const numBlocks =
    options.numBlocks ??
    Math.min(numBlocksForBudget(options.kvCacheBytes ?? defaultKvCacheBytes, { ...cacheShape, numKvHeads: cacheShape.kvHeads }), maxNumSeqs * maxBlocksPerSeq)
  if (numBlocks < 1) throw new Error(`the KV-cache budget holds no block of ${blockSize} tokens`)

  // this rank's share of the weights, for the loading progress (one rank holds them all today)
  const weightElements = parameterCount(config)
  const progress = options.onLoadProgress
  const loader = new WeightLoader(model.weights, provider.memory, progress && ((done) => progress(done * provider.memory.floatBytes, weightElements * provider.memory.floatBytes)))
  const kvCache = new KvCacheStorage(provider.memory, { ...cacheShape, numBlocks })
  const rank = loadRankPipeline(loader, config, shard, kvCache)
  // logits processors read and change the logits on the host: they get them every step, and
  // the argmax is taken again from what they leave
  const plugins = options.plugins ?? []
  const forward = plugins.length ? andThen(rank, sequence("plugins", plugins)) : rank
  const stepOutput = ({ argmax: ids, values, vocabSize: V, sampled, logprobs }: Logits): StepOutput => {
    if (plugins.length && values) for (let r = 0; r < ids.length; r++) ids[r] = argmax(values.subarray(r * V, (r + 1) * V))
    return { argmax: ids, logits: values, ...(sampled && { sampled }), ...(logprobs && { logprobs }) }
  }
  const workspace = new Workspace(provider.memory, dims, { maxTokens: maxNumBatchedTokens, maxSeqs: maxNumSeqs, maxBlocksPerSeq })
  const services = Context.make(Device, provider).pipe(
    Context.add(Communicator, singleRank(provider.kernels.copy))
  )

  const execute = (plan: StepPlan) =>
    Effect.try({
      try: () => workspace.upload(plan),
      catch: (cause) => new ExecutorError({ message: String(cause instanceof Error ? cause.message : cause), cause })
    }).pipe(
      Effect.zipRight(forward.run({ plan: plugins.length ? { ...plan, hostLogits: true, sampling: undefined, logprobs: undefined } : plan, workspace } satisfies StepInput)),
      Effect.map(stepOutput),
      Effect.provide(services)
    )
  // the argmax copied: its buffer is the next step's, which may run before this output is read
  const launch = (plan: StepPlan) => execute(plan).pipe(Effect.map((output) => Effect.succeed({ ...output, argmax: output.argmax.slice() })))
  // a step runner replays the device work alone: host-side logits processors would not run again
  const runner = plugins.length ? undefined : options.stepRunner?.({
    workspace,
    forward: (plan) => forward.run({ plan, workspace }).pipe(Effect.provide(services)),
    launch
  })

  return {
    model,
    provider,
    vocabSize: config.vocabSize,
    numBlocks,
    blockSize,
    // the processed logits of plugins exist on the host alone
    samplesOnDevice: provider.sampler !== undefined && plugins.length === 0,
    maxModelLen,
    maxNumBatchedTokens,
    maxNumSeqs,
    launchesAsync: runner?.launchesAsync === true,
    execute: runner?.execute ?? execute,
    launch: runner?.launch ?? launch,
    close: () =>
      Effect.sync(() => {
        runner?.release()
        workspace.release()
        kvCache.release()
        loader.release()
        if (!options.provider) provider.close()
      })
  }
}
