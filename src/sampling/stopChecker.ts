import type { SamplingParams } from "./SamplingParams.ts"
import type { IncrementalDetokenizer } from "./detokenizer.ts"
import { StopStringMatcher } from "./stopStrings.ts"

/** OpenAI's finish reasons; "abort" is vLLM's for cancelled requests */
export type FinishReason = "stop" | "length" | "abort"

/** What one sampled token adds to a sequence's output. */
export interface TokenVerdict {
  /** text safe to emit now */
  readonly text: string
  readonly finishReason: FinishReason | undefined
  /** the stop string or stop token id that ended the sequence; undefined for EOS and length */
  readonly stopReason: string | number | undefined
}

export interface StopCheckerOptions {
  readonly promptLength: number
  readonly eosTokenIds: ReadonlyArray<number>
  /** the model's context length: no sequence grows past it */
  readonly maxModelLen: number
}

/**
 * Decides, token by token, what text a sequence emits and when it ends, in vLLM's order:
 * EOS, then stop_token_ids (neither is printed), then stop strings, then length. EOS and
 * stop tokens count only once min_tokens outputs exist before them; the sampler masks them
 * until then, this is the same rule on the other side.
 */
export class StopChecker {
  private readonly eos: ReadonlySet<number>
  private readonly stopTokens: ReadonlySet<number>
  private readonly matcher: StopStringMatcher
  private readonly maxOutputTokens: number
  private numOutputTokens = 0
  finishReason: FinishReason | undefined = undefined

  constructor(
    private readonly params: SamplingParams,
    private readonly detokenizer: IncrementalDetokenizer,
    options: StopCheckerOptions,
  ) {
    this.eos = new Set(params.ignoreEos ? [] : options.eosTokenIds)
    this.stopTokens = new Set(params.stopTokenIds)
    this.matcher = new StopStringMatcher(params.stop)
    this.maxOutputTokens = Math.min(params.maxTokens ?? Number.POSITIVE_INFINITY, options.maxModelLen - options.promptLength)
  }

  /** Feeds the next sampled token. Must not be called after the sequence finished. */
  append(tokenId: number): TokenVerdict {
    const outputsBefore = this.numOutputTokens++
    if (outputsBefore >= this.params.minTokens) {
      if (this.eos.has(tokenId)) return this.finish("stop", undefined, "")
      if (this.stopTokens.has(tokenId)) return this.finish("stop", tokenId, "")
    }
    const text = this.matcher.push(this.detokenizer.feed(tokenId))
    if (this.matcher.matched !== undefined) return this.finish("stop", this.matcher.matched, text)
    if (this.numOutputTokens >= this.maxOutputTokens) return this.finish("length", undefined, text)
    return { text, finishReason: undefined, stopReason: undefined }
  }

  private finish(reason: FinishReason, stopReason: string | number | undefined, text: string): TokenVerdict {
    this.finishReason = reason
    // a stop string cuts the held-back tail; any other ending releases it
    const tail = typeof stopReason === "string" ? "" : this.matcher.flush()
    return { text: text + tail, finishReason: reason, stopReason }
  }
}
