import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

/**
 * Two tiny tokenizers in the two families our models use, written as tokenizer.json
 * files the way the tokenizers library serializes them:
 * - byte-level BPE (Llama 3, Qwen): every byte is a token, a few merges on top;
 * - sentencepiece-style BPE with byte fallback (Llama 2, Mistral): "▁" for spaces,
 *   unknown characters spelled as <0xNN> byte tokens.
 */

/** GPT-2's byte -> printable character map (bytes_to_unicode). */
export function bytesToUnicode(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)
  const map: string[] = []
  let next = 256
  for (let b = 0; b < 256; b++) map[b] = String.fromCodePoint(printable(b) ? b : next++)
  return map
}

const special = (id: number, content: string) => ({
  id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
})

export const BYTE_LEVEL_MERGES = ["H e", "He l", "Hel l", "Hell o", "Ġ w", "Ġw o", "Ġwo r", "Ġwor l", "Ġworl d"]
export const BEGIN_OF_TEXT = 265
export const END_OF_TEXT = 266

/**
 * Byte-level BPE: ids 0..255 are the bytes, 256..264 the merges above ("Hello" and
 * " world" become one token each), then <|begin_of_text|> and <|end_of_text|>.
 * `addBos` picks the post-processor: Llama 3's template that prepends
 * <|begin_of_text|>, or Qwen's plain ByteLevel one.
 */
export function byteLevelTokenizerJson(addBos: boolean): object {
  const vocab: Record<string, number> = {}
  bytesToUnicode().forEach((ch, b) => (vocab[ch] = b))
  BYTE_LEVEL_MERGES.forEach((m, i) => (vocab[m.replace(" ", "")] = 256 + i))
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true }
  const bos = { SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } }
  const template = {
    type: "TemplateProcessing",
    single: [bos, { Sequence: { id: "A", type_id: 0 } }],
    pair: [bos, { Sequence: { id: "A", type_id: 0 } }, bos, { Sequence: { id: "B", type_id: 1 } }],
    special_tokens: { "<|begin_of_text|>": { id: "<|begin_of_text|>", ids: [BEGIN_OF_TEXT], tokens: ["<|begin_of_text|>"] } },
  }
  return {
    version: "1.0",
    added_tokens: [special(BEGIN_OF_TEXT, "<|begin_of_text|>"), special(END_OF_TEXT, "<|end_of_text|>")],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: addBos ? { type: "Sequence", processors: [byteLevel, template] } : byteLevel,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, byte_fallback: false, ignore_merges: false, vocab, merges: BYTE_LEVEL_MERGES },
  }
}

export const SP_UNK = 0
export const SP_BOS = 1
export const SP_EOS = 2
/** <0xNN> is id 3 + NN. */
export const spByte = (b: number): number => 3 + b
export const SP_PIECES = ["▁", "H", "e", "l", "o", "w", "r", "d", "▁H", "▁He", "ll", "▁Hell", "▁Hello", "▁w", "▁wo", "▁wor", "▁worl", "▁world"]
export const spPiece = (piece: string): number => 259 + SP_PIECES.indexOf(piece)

/**
 * Sentencepiece-style BPE as Llama 2's tokenizer.json has it: the normalizer prepends
 * "▁" and replaces spaces with it; the decoder undoes that, fuses <0xNN> bytes, and
 * strips the one leading space. No post-processor: tokenizer_config.json's
 * add_bos_token decides about <s>, as transformers' LlamaTokenizerFast does.
 */
export function metaspaceTokenizerJson(): object {
  const vocab: Record<string, number> = { "<unk>": SP_UNK, "<s>": SP_BOS, "</s>": SP_EOS }
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`] = spByte(b)
  SP_PIECES.forEach((p) => (vocab[p] = spPiece(p)))
  const merges = ["▁ H", "▁H e", "l l", "▁He ll", "▁Hell o", "▁ w", "▁w o", "▁wo r", "▁wor l", "▁worl d"]
  return {
    version: "1.0",
    added_tokens: [
      { ...special(SP_UNK, "<unk>") },
      { ...special(SP_BOS, "<s>") },
      { ...special(SP_EOS, "</s>") },
    ],
    normalizer: {
      type: "Sequence",
      normalizers: [{ type: "Prepend", prepend: "▁" }, { type: "Replace", pattern: { String: " " }, content: "▁" }],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: { type: "BPE", dropout: null, unk_token: "<unk>", fuse_unk: true, byte_fallback: true, vocab, merges },
  }
}

/** Writes a model directory holding the given files (objects are written as JSON). */
export function writeTokenizerDir(files: Record<string, object | string>): string {
  const dir = mkdtempSync(join(tmpdir(), "tessera-tok-"))
  for (const [name, content] of Object.entries(files)) {
    writeFileSync(join(dir, name), typeof content === "string" ? content : JSON.stringify(content))
  }
  return dir
}
