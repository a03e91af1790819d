import { DetokenizerState } from "../tokenizer/detokenizer.ts"
import type { TextTokenizer } from "../tokenizer/tokenizer.ts"

/**
 * The slice of a tokenizer the engine needs to stream text: one decoding state per
 * sequence that turns each new token into the text it completes. A state never returns an
 * incomplete UTF-8 character; bytes of a character split across tokens wait inside it
 * until the character is whole. src/tokenizer's DetokenizerState has this shape.
 */
export interface IncrementalDetokenizer {
  /** text completed by this token; "" while a character is still incomplete */
  feed(tokenId: number): string
}

export interface Detokenizer {
  /** a fresh state for one sequence; the prompt is context (leading-space rules, byte fallback) */
  begin(promptTokenIds: ArrayLike<number>): IncrementalDetokenizer
}

/** The model's own tokenizer (vLLM's incremental detokenization, special tokens skipped). */
export const tokenizerDetokenizer = (tokenizer: TextTokenizer): Detokenizer => ({
  begin: (promptTokenIds) => new DetokenizerState(tokenizer, Array.from(promptTokenIds)),
})

/**
 * A detokenizer for vocabularies given as byte strings: text is the concatenation of the
 * tokens' bytes, decoded as one UTF-8 stream. `tokenBytes` returns an empty array for
 * tokens that print nothing. Tests and byte-level models without a tokenizer.json use it.
 */
export class ByteLevelDetokenizer implements Detokenizer {
  constructor(private readonly tokenBytes: (tokenId: number) => Uint8Array) {}

  begin(_promptTokenIds: ArrayLike<number>): IncrementalDetokenizer {
    // streaming mode keeps an incomplete trailing sequence inside the decoder
    const decoder = new TextDecoder("utf-8", { fatal: false })
    return { feed: (tokenId) => decoder.decode(this.tokenBytes(tokenId), { stream: true }) }
  }
}
