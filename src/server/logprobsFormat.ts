import type { TokenLogprobs } from "../sampling/logprobs.ts"
import type { TextTokenizer } from "../tokenizer/tokenizer.ts"

/**
 * The engine's logprobs in OpenAI's two shapes: the legacy completions object of parallel
 * arrays, and chat's list of {token, logprob, bytes, top_logprobs}. A token is shown as the
 * text it decodes to alone, as OpenAI and vLLM show it.
 */

/** -inf (a token the logit bias or a mask ruled out) is not JSON; vLLM clamps to the same floor */
const floor = (logprob: number) => Math.max(logprob, -9999)

/** decoded token strings, cached: a vocabulary is bounded and hot tokens repeat */
export class TokenTexts {
  private readonly cache = new Map<number, string>()
  constructor(private readonly tokenizer: TextTokenizer) {}

  text(tokenId: number): string {
    let text = this.cache.get(tokenId)
    if (text === undefined) {
      text = this.tokenizer.decode([tokenId])
      this.cache.set(tokenId, text)
    }
    return text
  }
}

export interface CompletionLogprobs {
  readonly tokens: string[]
  readonly token_logprobs: number[]
  readonly top_logprobs: Array<Record<string, number>>
  readonly text_offset: number[]
}

/**
 * Completions logprobs from `offset` on (the text already returned before these tokens).
 * top_logprobs holds the `logprobs` most likely tokens and the sampled one, so up to
 * logprobs + 1 entries, as the OpenAI reference says.
 */
export const completionLogprobs = (
  entries: ReadonlyArray<TokenLogprobs>,
  texts: TokenTexts,
  offset: number
): { readonly logprobs: CompletionLogprobs; readonly nextOffset: number } => {
  const logprobs: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] }
  for (const entry of entries) {
    const token = texts.text(entry.tokenId)
    logprobs.tokens.push(token)
    logprobs.token_logprobs.push(floor(entry.logprob))
    const top: Record<string, number> = {}
    for (const alternative of entry.top) top[texts.text(alternative.tokenId)] = floor(alternative.logprob)
    top[token] = floor(entry.logprob)
    logprobs.top_logprobs.push(top)
    logprobs.text_offset.push(offset)
    offset += token.length
  }
  return { logprobs, nextOffset: offset }
}

export interface ChatTokenLogprob {
  readonly token: string
  readonly logprob: number
  readonly bytes: number[]
}

export interface ChatLogprobs {
  readonly content: Array<ChatTokenLogprob & { readonly top_logprobs: ChatTokenLogprob[] }>
}

const encoder = new TextEncoder()

const chatToken = (tokenId: number, logprob: number, texts: TokenTexts): ChatTokenLogprob => {
  const token = texts.text(tokenId)
  return { token, logprob: floor(logprob), bytes: Array.from(encoder.encode(token)) }
}

/** chat logprobs: exactly `top_logprobs` alternatives per token (the engine computed that many) */
export const chatLogprobs = (entries: ReadonlyArray<TokenLogprobs>, texts: TokenTexts): ChatLogprobs => ({
  content: entries.map((entry) => ({
    ...chatToken(entry.tokenId, entry.logprob, texts),
    top_logprobs: entry.top.map((alternative) => chatToken(alternative.tokenId, alternative.logprob, texts))
  }))
})
