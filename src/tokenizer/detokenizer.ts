import type { TextTokenizer } from "./tokenizer.ts"

/**
 * Streaming detokenization, one token at a time, as vLLM's detokenize_incrementally
 * does it. Decoding a token alone is wrong twice over: byte-level tokens can hold part
 * of a UTF-8 character, and decoders change a token's text by context (sentencepiece
 * drops the space of the first token). So each step decodes a short window of
 * context: [prefixOffset, readOffset) is text already emitted, [prefixOffset, end) the
 * same plus the new tokens, and the delta is the difference. While the window's text
 * ends in U+FFFD, a character is still incomplete and nothing is emitted.
 */

/** How many prompt tokens of context the first step decodes with (vLLM's value). */
const INITIAL_CONTEXT = 5
const REPLACEMENT_CHARACTER = "\uFFFD"

export interface DetokenizerOptions {
  readonly skipSpecialTokens?: boolean
}

export class DetokenizerState {
  private readonly ids: number[]
  private prefixOffset: number
  private readOffset: number
  private readonly skipSpecialTokens: boolean

  /** `promptIds` give the first generated tokens their context; they are never emitted. */
  constructor(
    private readonly tokenizer: TextTokenizer,
    promptIds: readonly number[] = [],
    options: DetokenizerOptions = {},
  ) {
    this.ids = [...promptIds]
    this.readOffset = this.ids.length
    this.prefixOffset = Math.max(this.readOffset - INITIAL_CONTEXT, 0)
    this.skipSpecialTokens = options.skipSpecialTokens ?? true
  }

  /** Adds one generated token and returns the text it completes ("" while a character is partial). */
  feed(id: number): string {
    this.ids.push(id)
    const prefixText = this.decodeWindow(this.prefixOffset, this.readOffset)
    const fullText = this.decodeWindow(this.prefixOffset, this.ids.length)
    if (fullText.length <= prefixText.length || fullText.endsWith(REPLACEMENT_CHARACTER)) return ""
    this.prefixOffset = this.readOffset
    this.readOffset = this.ids.length
    return fullText.slice(prefixText.length)
  }

  /**
   * Text still held back at the end of a sequence (a partial character, which the
   * model will never finish), as the full decode would show it.
   */
  flush(): string {
    const prefixText = this.decodeWindow(this.prefixOffset, this.readOffset)
    const fullText = this.decodeWindow(this.prefixOffset, this.ids.length)
    this.prefixOffset = this.readOffset
    this.readOffset = this.ids.length
    return fullText.length > prefixText.length ? fullText.slice(prefixText.length) : ""
  }

  private decodeWindow(begin: number, end: number): string {
    if (begin >= end) return ""
    // No clean-up: it rewrites " ." and the like across window boundaries, which would
    // make deltas disagree with each other (vLLM's streaming does not clean up either).
    return this.tokenizer.decode(this.ids.slice(begin, end), {
      skipSpecialTokens: this.skipSpecialTokens,
      cleanUpTokenizationSpaces: false,
    })
  }
}
