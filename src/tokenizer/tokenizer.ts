import { existsSync } from "node:fs"
import { join } from "node:path"
import { ByteFallbackDecoder, type Decoder, SequenceDecoder, Tokenizer } from "@huggingface/tokenizers"
import { Effect, Schema } from "effect"
import { decodeOrThrow, readJsonFile } from "../model/jsonFile.ts"
import { TokenizerLoadError } from "./errors.ts"

/**
 * A model's tokenizer (tokenizer.json + tokenizer_config.json), behaving as
 * transformers' fast tokenizer does for the same files: the same ids from encode, the
 * same text from decode.
 */

export interface SpecialToken {
  readonly content: string
  readonly id: number
}

export interface EncodeOptions {
  /** Add what the post-processor adds (BOS for Llama, nothing for Qwen). Default true. */
  readonly addSpecialTokens?: boolean
}

export interface DecodeOptions {
  readonly skipSpecialTokens?: boolean
  /** Default: the model's clean_up_tokenization_spaces (false when unset, as transformers). */
  readonly cleanUpTokenizationSpaces?: boolean
}

/** Special-token strings by role, as tokenizer_config.json names them (chat templates read these). */
export interface SpecialTokenStrings {
  readonly bos_token?: string
  readonly eos_token?: string
  readonly pad_token?: string
  readonly unk_token?: string
}

export class TextTokenizer {
  constructor(
    private readonly inner: Tokenizer,
    readonly dir: string,
    readonly specialTokenStrings: SpecialTokenStrings,
    /** Ids of added tokens marked special: what skipSpecialTokens drops. */
    readonly specialIds: ReadonlySet<number>,
    /** One past the largest token id (transformers' len(tokenizer)). */
    readonly vocabSize: number,
    private readonly cleanUpByDefault: boolean,
  ) {}

  get bos(): SpecialToken | null {
    return this.special(this.specialTokenStrings.bos_token)
  }
  get eos(): SpecialToken | null {
    return this.special(this.specialTokenStrings.eos_token)
  }
  get pad(): SpecialToken | null {
    return this.special(this.specialTokenStrings.pad_token)
  }
  get unk(): SpecialToken | null {
    return this.special(this.specialTokenStrings.unk_token)
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.inner.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    // Ids past the tokenizer's vocabulary (models pad their embedding) decode to
    // nothing, as in the Rust tokenizer; the JS one would fail or print "undefined".
    const known = ids.filter((id) => this.inner.id_to_token(id) !== undefined)
    if (known.length === 0) return ""
    return this.inner.decode(known, {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: options.cleanUpTokenizationSpaces ?? this.cleanUpByDefault,
    })
  }

  tokenToId(token: string): number | undefined {
    return this.inner.token_to_id(token)
  }

  idToToken(id: number): string | undefined {
    return this.inner.id_to_token(id)
  }

  private special(content: string | undefined): SpecialToken | null {
    if (content === undefined) return null
    const id = this.inner.token_to_id(content)
    return id === undefined ? null : { content, id }
  }
}

// tokenizer_config.json writes special tokens as strings or as AddedToken objects.
const TokenString = Schema.Union(Schema.String, Schema.Struct({ content: Schema.String }))
const optional = <S extends Schema.Schema.Any>(s: S) => Schema.optional(Schema.NullOr(s))

const TokenizerConfigFields = Schema.Struct({
  tokenizer_class: optional(Schema.String),
  bos_token: optional(TokenString),
  eos_token: optional(TokenString),
  pad_token: optional(TokenString),
  unk_token: optional(TokenString),
  additional_special_tokens: optional(Schema.Array(TokenString)),
  add_bos_token: optional(Schema.Boolean),
  add_eos_token: optional(Schema.Boolean),
  clean_up_tokenization_spaces: optional(Schema.Boolean),
})
type TokenizerConfigFields = typeof TokenizerConfigFields.Type

const tokenizerError = (path: string, problem: string) => new TokenizerLoadError({ path, message: `${path}: ${problem}` })
const tokenContent = (t: string | { readonly content: string } | null | undefined) =>
  t == null ? undefined : typeof t === "string" ? t : t.content

/** Loads the tokenizer of the model in `dir`. Throws TokenizerLoadError naming the file. */
export function loadTokenizer(dir: string): TextTokenizer {
  const jsonPath = join(dir, "tokenizer.json")
  const tokenizerJson = readJsonFile(jsonPath, tokenizerError) as Record<string, unknown>
  const configPath = join(dir, "tokenizer_config.json")
  const rawConfig = existsSync(configPath) ? (readJsonFile(configPath, tokenizerError) as Record<string, unknown>) : {}
  const config = decodeOrThrow(TokenizerConfigFields, rawConfig, configPath, tokenizerError)
  const strings = specialTokenStrings(dir, config)

  const post = postProcessorOverride(config, strings)
  const libraryConfig = {
    ...rawConfig,
    ...strings,
    // The library compares these as strings.
    additional_special_tokens: (config.additional_special_tokens ?? []).map((t) => tokenContent(t)!),
  }
  let inner: Tokenizer
  try {
    inner = new Tokenizer({ added_tokens: [], ...tokenizerJson, ...(post ? { post_processor: post } : {}) }, libraryConfig)
  } catch (e) {
    throw tokenizerError(jsonPath, `cannot build the tokenizer (${e instanceof Error ? e.message : String(e)})`)
  }

  if (inner.decoder) matchRustByteFallback(inner.decoder)

  const specialIds = new Set<number>()
  for (const [id, token] of inner.get_added_tokens_decoder()) if (token.special) specialIds.add(id)
  let maxId = -1
  for (const id of inner.get_vocab(true).values()) maxId = Math.max(maxId, id)

  return new TextTokenizer(
    inner,
    dir,
    strings,
    specialIds,
    maxId + 1,
    config.clean_up_tokenization_spaces ?? false,
  )
}

/** loadTokenizer as an Effect. */
export const loadTokenizerEffect = (dir: string): Effect.Effect<TextTokenizer, TokenizerLoadError> =>
  Effect.try({
    try: () => loadTokenizer(dir),
    catch: (e) => (e instanceof TokenizerLoadError ? e : tokenizerError(dir, e instanceof Error ? e.message : String(e))),
  }).pipe(Effect.withSpan("Tokenizer.load"))

/** tokenizer_config.json's special tokens, falling back to special_tokens_map.json as transformers does. */
function specialTokenStrings(dir: string, config: TokenizerConfigFields): SpecialTokenStrings {
  const mapPath = join(dir, "special_tokens_map.json")
  const map = existsSync(mapPath)
    ? decodeOrThrow(TokenizerConfigFields, readJsonFile(mapPath, tokenizerError), mapPath, tokenizerError)
    : {}
  const pick = (key: "bos_token" | "eos_token" | "pad_token" | "unk_token") =>
    tokenContent(config[key]) ?? tokenContent((map as TokenizerConfigFields)[key])
  const entries = (["bos_token", "eos_token", "pad_token", "unk_token"] as const)
    .map((key) => [key, pick(key)] as const)
    .filter(([, value]) => value !== undefined)
  return Object.fromEntries(entries) as SpecialTokenStrings
}

/**
 * transformers rebuilds the post-processor from add_bos_token / add_eos_token when
 * tokenizer_config.json sets either (v5 for every tokenizer; v4 for the Llama classes,
 * where add_bos_token defaults to true). This is how Llama 2 and Mistral get <s>.
 * Returns null to keep tokenizer.json's own post-processor (Llama 3 adds
 * <|begin_of_text|> there; Qwen's adds nothing).
 */
function postProcessorOverride(config: TokenizerConfigFields, strings: SpecialTokenStrings): object | null {
  if (config.add_bos_token == null && config.add_eos_token == null) return null
  const llamaClass = /^(Code)?LlamaTokenizer(Fast)?$/.test(config.tokenizer_class ?? "")
  const bos = (config.add_bos_token ?? llamaClass) ? strings.bos_token : undefined
  const eos = (config.add_eos_token ?? false) ? strings.eos_token : undefined
  const special = (id: string, typeId: number) => ({ SpecialToken: { id, type_id: typeId } })
  const sequence = (id: "A" | "B", typeId: number) => ({ Sequence: { id, type_id: typeId } })
  const wrap = (id: "A" | "B", typeId: number) => [
    ...(bos ? [special(bos, typeId)] : []),
    sequence(id, typeId),
    ...(eos ? [special(eos, typeId)] : []),
  ]
  return { type: "TemplateProcessing", single: wrap("A", 0), pair: [...wrap("A", 0), ...wrap("B", 1)] }
}

/**
 * The Rust ByteFallback decoder turns a run of <0xNN> tokens that is not valid UTF-8
 * into one U+FFFD per byte; the JS one lets TextDecoder keep the valid bytes. Give the
 * JS decoders Rust's rule so decode output matches transformers byte for byte.
 */
function matchRustByteFallback(decoder: Decoder): void {
  if (decoder instanceof SequenceDecoder) decoder.decoders.forEach(matchRustByteFallback)
  if (!(decoder instanceof ByteFallbackDecoder)) return
  const strict = new TextDecoder("utf-8", { fatal: true })
  decoder.text_decoder = {
    decode: (bytes: Uint8Array) => {
      try {
        return strict.decode(bytes)
      } catch {
        return "\uFFFD".repeat(bytes.length)
      }
    },
  } as TextDecoder
}
