import type { Brand } from "effect"
import { hashBlockTokens, ROOT_BLOCK_HASH } from "./blockPool.ts"

/** A scheduled sequence: one completion of a user request (vLLM v1 names children of n > 1 so too). */
export type RequestId = string & Brand.Brand<"RequestId">

export const RequestId = (id: string): RequestId => id as RequestId

/**
 * The id of sample `index` of a request with `n` samples. With n = 1 it is the request's
 * own id; with n > 1 it follows vLLM v1's child ids ("{index}_{parent}").
 */
export const childRequestId = (parent: string, index: number, n: number): RequestId =>
  RequestId(n === 1 ? parent : `${index}_${parent}`)

export type RequestStatus = "waiting" | "running" | "preempted" | "finished"

/**
 * Scheduler-side state of one sequence. There are no prefill and decode phases: a request
 * has tokens (prompt then outputs) and `numComputedTokens` of them already in the KV cache;
 * each step computes some of the rest (vLLM v1's single rule).
 */
export class Request {
  /** prompt, then every sampled output token */
  readonly tokenIds: number[]
  readonly promptLength: number
  numComputedTokens = 0
  status: RequestStatus = "waiting"
  numPreemptions = 0
  /** chained content hashes of the full blocks of `tokenIds`, extended lazily */
  readonly blockHashes: number[] = []
  /**
   * Siblings of an n > 1 request, forked from this one once its prompt is computed: they
   * share its full prompt blocks instead of recomputing them.
   */
  pendingForks: Request[]
  /** for a sibling still waiting to be forked: the request it will be forked from */
  forkParent: Request | undefined = undefined

  constructor(
    readonly requestId: RequestId,
    promptTokenIds: ArrayLike<number>,
    /** arrival order, for FCFS */
    readonly arrival: number,
    pendingForks: Request[] = [],
  ) {
    this.tokenIds = Array.from(promptTokenIds)
    this.promptLength = this.tokenIds.length
    this.pendingForks = pendingForks
    for (const sibling of pendingForks) sibling.forkParent = this
  }

  get numTokens(): number {
    return this.tokenIds.length
  }

  get numOutputTokens(): number {
    return this.tokenIds.length - this.promptLength
  }

  appendOutputToken(tokenId: number): void {
    this.tokenIds.push(tokenId)
  }

  /** Hash of full block `index`; `index` must be below floor(numTokens / blockSize). */
  blockHash(index: number, blockSize: number): number {
    while (this.blockHashes.length <= index) {
      const j = this.blockHashes.length
      const parent = j === 0 ? ROOT_BLOCK_HASH : this.blockHashes[j - 1]
      this.blockHashes.push(hashBlockTokens(parent, this.tokenIds, j * blockSize, blockSize))
    }
    return this.blockHashes[index]
  }
}
