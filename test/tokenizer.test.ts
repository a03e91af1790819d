import { rmSync } from "node:fs"
import { afterAll, describe, expect, it } from "vitest"
import { ChatTemplateError, TokenizerLoadError } from "../src/tokenizer/errors.ts"
import { DetokenizerState } from "../src/tokenizer/detokenizer.ts"
import { loadChatTemplate, renderChat, strftime } from "../src/tokenizer/chatTemplate.ts"
import { loadTokenizer, type TextTokenizer } from "../src/tokenizer/tokenizer.ts"
import {
  BEGIN_OF_TEXT,
  byteLevelTokenizerJson,
  END_OF_TEXT,
  metaspaceTokenizerJson,
  SP_BOS,
  spByte,
  spPiece,
  writeTokenizerDir,
} from "./helpers/tinyTokenizers.ts"

const dirs: string[] = []
const dir = (files: Record<string, object | string>) => {
  const d = writeTokenizerDir(files)
  dirs.push(d)
  return d
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

const llama3Dir = (extra: Record<string, object | string> = {}) =>
  dir({
    "tokenizer.json": byteLevelTokenizerJson(true),
    "tokenizer_config.json": {
      tokenizer_class: "PreTrainedTokenizerFast",
      bos_token: "<|begin_of_text|>",
      // AddedToken form, as older tokenizer_config.json files write it
      eos_token: { __type: "AddedToken", content: "<|end_of_text|>", special: true },
      clean_up_tokenization_spaces: true,
    },
    ...extra,
  })
const qwenDir = () => dir({ "tokenizer.json": byteLevelTokenizerJson(false), "tokenizer_config.json": { eos_token: "<|end_of_text|>" } })
const llama2Dir = (addBos = true) =>
  dir({
    "tokenizer.json": metaspaceTokenizerJson(),
    "tokenizer_config.json": {
      tokenizer_class: "LlamaTokenizer",
      bos_token: "<s>",
      eos_token: "</s>",
      unk_token: "<unk>",
      add_bos_token: addBos,
      add_eos_token: false,
    },
  })

const utf8 = (s: string) => [...new TextEncoder().encode(s)]

describe("byte-level BPE (Llama 3 / Qwen)", () => {
  it("Llama 3's post-processor adds <|begin_of_text|>; merges give one token per word", () => {
    const tok = loadTokenizer(llama3Dir())
    expect(tok.encode("Hello world")).toEqual([BEGIN_OF_TEXT, 259, 264])
    expect(tok.encode("Hello world", { addSpecialTokens: false })).toEqual([259, 264])
    expect(tok.bos).toEqual({ content: "<|begin_of_text|>", id: BEGIN_OF_TEXT })
    expect(tok.eos).toEqual({ content: "<|end_of_text|>", id: END_OF_TEXT })
    expect(tok.vocabSize).toBe(267)
    expect([...tok.specialIds].sort()).toEqual([BEGIN_OF_TEXT, END_OF_TEXT])
  })

  it("Qwen's adds nothing", () => {
    const tok = loadTokenizer(qwenDir())
    expect(tok.encode("Hello world")).toEqual([259, 264])
    expect(tok.bos).toBeNull()
  })

  it("round-trips any text through bytes, multi-byte characters included", () => {
    const tok = loadTokenizer(qwenDir())
    for (const text of ["héllo 世界 🦀!", " Hello  world\n\ttabs", "a\u0301 combining, ZWJ 👩‍💻"]) {
      const ids = tok.encode(text)
      // no merges apply outside "Hello"/" world", so each UTF-8 byte is its own token
      expect(ids.length).toBeLessThanOrEqual(utf8(text).length)
      expect(tok.decode(ids)).toBe(text)
    }
  })

  it("special tokens: encoded whole from text, dropped by skipSpecialTokens", () => {
    const tok = loadTokenizer(llama3Dir())
    const ids = tok.encode("Hello<|end_of_text|>", { addSpecialTokens: false })
    expect(ids).toEqual([259, END_OF_TEXT])
    expect(tok.decode([BEGIN_OF_TEXT, ...ids])).toBe("<|begin_of_text|>Hello<|end_of_text|>")
    expect(tok.decode([BEGIN_OF_TEXT, ...ids], { skipSpecialTokens: true })).toBe("Hello")
  })

  it("clean_up_tokenization_spaces from tokenizer_config.json applies by default, as in transformers", () => {
    const ids = loadTokenizer(qwenDir()).encode("a , b")
    expect(loadTokenizer(llama3Dir()).decode(ids)).toBe("a, b")
    expect(loadTokenizer(qwenDir()).decode(ids)).toBe("a , b")
    expect(loadTokenizer(llama3Dir()).decode(ids, { cleanUpTokenizationSpaces: false })).toBe("a , b")
  })

  it("ids past the vocabulary (padded embeddings) decode to nothing; empty decodes to empty", () => {
    const tok = loadTokenizer(qwenDir())
    expect(tok.decode([259, 100000, 264])).toBe("Hello world")
    expect(tok.decode([])).toBe("")
  })
})

describe("sentencepiece-style BPE with byte fallback (Llama 2 / Mistral)", () => {
  it("add_bos_token adds <s>, and only when set", () => {
    expect(loadTokenizer(llama2Dir()).encode("Hello world")).toEqual([SP_BOS, spPiece("▁Hello"), spPiece("▁world")])
    expect(loadTokenizer(llama2Dir(false)).encode("Hello world")).toEqual([spPiece("▁Hello"), spPiece("▁world")])
  })

  it("spells characters outside the vocabulary as <0xNN> bytes and decodes them back", () => {
    const tok = loadTokenizer(llama2Dir())
    const ids = tok.encode("Hello wörld", { addSpecialTokens: false })
    expect(ids).toEqual([spPiece("▁Hello"), spPiece("▁w"), spByte(0xc3), spByte(0xb6), spPiece("r"), spPiece("l"), spPiece("d")])
    expect(tok.decode(ids)).toBe("Hello wörld")
    expect(tok.decode([SP_BOS, ...ids])).toBe("<s> Hello wörld")
    expect(tok.decode([SP_BOS, ...ids], { skipSpecialTokens: true })).toBe("Hello wörld")
  })

  it("decodes a byte run that is not UTF-8 as one U+FFFD per byte, as the Rust decoder does", () => {
    const tok = loadTokenizer(llama2Dir())
    // "H" is valid on its own, but the run H + a lone lead byte is not: Rust replaces both
    expect(tok.decode([spByte(0x48), spByte(0xc3), spPiece("▁world")])).toBe("\uFFFD\uFFFD world")
    expect(tok.decode([spByte(0x48), spByte(0xc3), spByte(0xa9)])).toBe("Hé")
  })
})

describe("incremental detokenizer", () => {
  /** Feeds ids one at a time; returns the deltas. */
  const stream = (tok: TextTokenizer, ids: readonly number[], prompt: readonly number[] = []) => {
    const state = new DetokenizerState(tok, prompt)
    const deltas = ids.map((id) => state.feed(id))
    return { deltas, rest: state.flush() }
  }

  it("never emits part of a UTF-8 character split over byte tokens", () => {
    const tok = loadTokenizer(qwenDir())
    const text = "a🦀é世界!"
    const ids = tok.encode(text)
    expect(ids).toHaveLength(utf8(text).length) // every byte a token: the hard case
    const { deltas, rest } = stream(tok, ids)
    expect(deltas.some((d) => d.includes("\uFFFD"))).toBe(false)
    expect(deltas.join("")).toBe(tok.decode(ids))
    expect(rest).toBe("")
    // the crab's 4 bytes: 3 held back, then the whole character
    expect(deltas.slice(1, 5)).toEqual(["", "", "", "🦀"])
  })

  it("works the same over byte-fallback tokens and keeps the space a prompt gives context for", () => {
    const tok = loadTokenizer(llama2Dir())
    const all = tok.encode("Hello wörld 🦀")
    const prompt = all.slice(0, 2) // <s> ▁Hello
    const ids = all.slice(2)
    const { deltas } = stream(tok, ids, prompt)
    expect(deltas.some((d) => d.includes("\uFFFD"))).toBe(false)
    expect(deltas.join("")).toBe(" wörld 🦀")
    // without a prompt the first token is first in its window, and its space is stripped as in a full decode
    expect(stream(tok, ids).deltas.join("")).toBe(tok.decode(ids))
  })

  it("skips special tokens by default, and flush() releases an unfinished character", () => {
    const tok = loadTokenizer(llama3Dir())
    const ids = [259, END_OF_TEXT, ...tok.encode(" 🦀", { addSpecialTokens: false }).slice(0, 3)]
    const { deltas, rest } = stream(tok, ids)
    expect(deltas.join("")).toBe("Hello ")
    expect(rest).toBe(tok.decode(ids.slice(3))) // the partial crab, as a full decode shows it
    expect(rest.startsWith("\uFFFD")).toBe(true)
  })
})

describe("chat template", () => {
  // Llama-3-like, exercising bos_token, raise_exception and strftime_now
  const template =
    "{{ bos_token }}{% for m in messages %}{% if m['role'] not in ['user', 'assistant', 'system'] %}" +
    "{{ raise_exception('unknown role ' + m['role']) }}{% endif %}" +
    "<|start|>{{ m['role'] }}\n{{ m['content'] | trim }}<|end_of_text|>{% endfor %}" +
    "{% if add_generation_prompt %}<|start|>assistant ({{ strftime_now('%d %b %Y') }})\n{% endif %}" +
    "{% if tools is not none %}TOOLS{% endif %}"
  const messages = [
    { role: "system", content: "Be brief." },
    { role: "user", content: " Hello world " },
  ]
  const now = new Date(2024, 6, 4, 9, 5, 7)

  it("renders with transformers' variables and encodes without a second BOS", () => {
    const d = llama3Dir({ "tokenizer_config.json": { bos_token: "<|begin_of_text|>", eos_token: "<|end_of_text|>", chat_template: template } })
    const tok = loadTokenizer(d)
    const chat = loadChatTemplate(d, tok)
    const text = chat.render(messages, { addGenerationPrompt: true, now })
    expect(text).toBe(
      "<|begin_of_text|><|start|>system\nBe brief.<|end_of_text|><|start|>user\nHello world<|end_of_text|><|start|>assistant (04 Jul 2024)\n",
    )
    const ids = chat.apply(messages, { addGenerationPrompt: true, now })
    expect(ids.filter((id) => id === BEGIN_OF_TEXT)).toHaveLength(1)
    expect(ids[0]).toBe(BEGIN_OF_TEXT)
    expect(tok.decode(ids)).toBe(text)
    expect(renderChat(d, tok, messages, { addGenerationPrompt: true, now })).toEqual({ text, ids })
    expect(chat.render(messages, { tools: [{ name: "f" }], now }).endsWith("TOOLS")).toBe(true)
  })

  it("prefers chat_template.jinja, and picks 'default' from a list of named templates", () => {
    const fromFile = llama3Dir({
      "tokenizer_config.json": { bos_token: "<|begin_of_text|>", chat_template: "config" },
      "chat_template.jinja": "file:{{ messages | length }}",
    })
    expect(loadChatTemplate(fromFile, loadTokenizer(fromFile)).render(messages)).toBe("file:2")
    const named = llama3Dir({
      "tokenizer_config.json": {
        chat_template: [
          { name: "tool_use", template: "tools" },
          { name: "default", template: "default:{{ eos_token }}" },
        ],
        eos_token: "<|end_of_text|>",
      },
    })
    expect(loadChatTemplate(named, loadTokenizer(named)).render(messages)).toBe("default:<|end_of_text|>")
  })

  it("raise_exception and a missing template are ChatTemplateErrors", () => {
    const d = llama3Dir({ "tokenizer_config.json": { bos_token: "<|begin_of_text|>", chat_template: template } })
    const chat = loadChatTemplate(d, loadTokenizer(d))
    expect(() => chat.render([{ role: "robot", content: "beep" }])).toThrow(ChatTemplateError)
    expect(() => chat.render([{ role: "robot", content: "beep" }])).toThrow("unknown role robot")
    const none = qwenDir()
    expect(() => loadChatTemplate(none, loadTokenizer(none))).toThrow(ChatTemplateError)
    expect(() => loadChatTemplate(none, loadTokenizer(none))).toThrow(`${none}: the model has no chat template`)
  })

  it("strftime_now follows Python's C-locale codes", () => {
    expect(strftime(now, "%Y-%m-%d %H:%M:%S %a %A %b %B %y %I%p %%")).toBe("2024-07-04 09:05:07 Thu Thursday Jul July 24 09AM %")
  })
})

describe("tokenizer load errors name the file", () => {
  it("missing tokenizer.json", () => {
    const d = dir({})
    expect(() => loadTokenizer(d)).toThrow(TokenizerLoadError)
    expect(() => loadTokenizer(d)).toThrow(`${d}/tokenizer.json: file not found`)
  })

  it("malformed tokenizer_config.json field", () => {
    const d = dir({ "tokenizer.json": byteLevelTokenizerJson(false), "tokenizer_config.json": { bos_token: 5 } })
    expect(() => loadTokenizer(d)).toThrow(`${d}/tokenizer_config.json: field "bos_token"`)
  })
})
