import type { DeviceMemory } from "../kernels/provider.ts"
import type { StepPlan } from "./stepPlan.ts"

/** Per-rank sizes of the activations, after tensor-parallel sharding. */
export interface LocalDims {
  readonly hidden: number
  readonly heads: number
  readonly kvHeads: number
  readonly headDim: number
  readonly intermediate: number
  /** this rank's slice of the vocabulary */
  readonly vocab: number
  /** the whole vocabulary, after the lm_head gather */
  readonly fullVocab: number
}

export interface WorkspaceLimits {
  readonly maxTokens: number
  readonly maxSeqs: number
  readonly maxBlocksPerSeq: number
}

/**
 * The device buffers one step uses, allocated once for the largest step the scheduler can
 * plan, so a step allocates nothing. Pointers are byte offsets into device memory.
 */
export class Workspace {
  readonly tokenIds: number
  readonly positions: number
  readonly slots: number
  readonly queryToSeq: number
  readonly blockTables: number
  readonly sampleRows: number
  /** [T] where each input id comes from (StepPlan.previousTokens), for `take_tokens` */
  readonly tokenSources: number
  /**
   * the running sum of the residual stream [T, H], f32 on every provider, in two buffers: a
   * layer's norms read one and write the other (see `otherResidual`)
   */
  readonly residual: number
  readonly residualSpare: number
  /** a layer's output not yet added into the residual [T, H] */
  readonly x: number
  readonly normed: number
  /** fused q, k, v projections [T, (heads + 2 kvHeads) * headDim] */
  readonly qkv: number
  readonly attention: number
  readonly gateUp: number
  readonly activation: number
  readonly rowsNormed: number
  readonly logitsShard: number
  readonly logits: number
  readonly hostLogits: Float32Array
  /** argmax of each logits row [S], on the device and on the host */
  readonly argmax: number
  readonly hostArgmax: Int32Array
  /** the device sampler's token of each logits row [S], where the step draws on the device */
  readonly drawn: number
  /** bytes of one float element (f32 on the CPU, bf16 on GPUs): the step between heads of `qkv` */
  readonly floatBytes: number
  private readonly owned: number[] = []

  constructor(
    private readonly memory: DeviceMemory,
    readonly dims: LocalDims,
    readonly limits: WorkspaceLimits
  ) {
    const { maxTokens: T, maxSeqs: S } = limits
    this.floatBytes = memory.floatBytes
    const f = (elements: number) => this.take(elements * memory.floatBytes)
    const i = (elements: number) => this.take(elements * 4)
    this.tokenIds = i(T)
    this.positions = i(T)
    this.slots = i(T)
    this.queryToSeq = i(T)
    this.blockTables = i(S * limits.maxBlocksPerSeq)
    this.sampleRows = i(S)
    this.tokenSources = i(T)
    this.residual = this.take(T * dims.hidden * 4)
    this.residualSpare = this.take(T * dims.hidden * 4)
    this.x = f(T * dims.hidden)
    this.normed = f(T * dims.hidden)
    this.qkv = f(T * (dims.heads + 2 * dims.kvHeads) * dims.headDim)
    this.attention = f(T * dims.heads * dims.headDim)
    this.gateUp = f(T * 2 * dims.intermediate)
    this.activation = f(T * dims.intermediate)
    this.rowsNormed = f(S * dims.hidden)
    this.logitsShard = f(S * dims.vocab)
    this.logits = f(S * dims.fullVocab)
    this.hostLogits = new Float32Array(S * dims.fullVocab)
    this.argmax = i(S)
    this.hostArgmax = new Int32Array(S)
    this.drawn = i(S)
  }

  /** the residual buffer that is not `residual` */
  otherResidual(residual: number): number {
    return residual === this.residual ? this.residualSpare : this.residual
  }

  private take(bytes: number): number {
    const ptr = this.memory.alloc(bytes)
    this.owned.push(ptr)
    return ptr
  }

  /** copy the plan's index arrays to the device; the plan must fit the limits */
  upload(plan: StepPlan): void {
    const T = plan.tokenIds.length
    const { maxTokens, maxSeqs, maxBlocksPerSeq } = this.limits
    if (T > maxTokens || plan.seqs.length > maxSeqs || plan.maxBlocksPerSeq > maxBlocksPerSeq) {
      throw new Error(
        `step plan (${T} tokens, ${plan.seqs.length} sequences, ${plan.maxBlocksPerSeq} blocks per sequence) exceeds the workspace (${maxTokens}, ${maxSeqs}, ${maxBlocksPerSeq})`
      )
    }
    this.memory.write(this.tokenIds, plan.tokenIds)
    this.memory.write(this.positions, plan.positions)
    this.memory.write(this.slots, plan.slotMapping)
    this.memory.write(this.queryToSeq, plan.queryToSeq)
    this.memory.write(this.blockTables, plan.blockTables)
    this.memory.write(this.sampleRows, plan.sampleRows)
    if (plan.previousTokens) this.memory.write(this.tokenSources, plan.previousTokens)
  }

  release(): void {
    for (const ptr of this.owned.splice(0)) this.memory.free(ptr)
  }
}
