import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { Environment, Interpreter, Template } from "@huggingface/jinja"
import { readJsonFile } from "../model/jsonFile.ts"
import { ChatTemplateError } from "./errors.ts"
import type { TextTokenizer } from "./tokenizer.ts"

/**
 * Chat templates rendered as transformers' apply_chat_template renders them: the same
 * variables, Jinja with trim_blocks and lstrip_blocks (which @huggingface/jinja always
 * uses), and the rendered text encoded without adding special tokens again, since the
 * template writes BOS itself where the model wants one.
 */

/** A chat message as OpenAI-style APIs and templates know it; extra fields pass through. */
export interface ChatMessage {
  readonly role: string
  readonly content: string | null | readonly unknown[]
  readonly [key: string]: unknown
}

export interface ChatTemplateOptions {
  /** End with the header of an assistant turn, for the model to continue. Default false. */
  readonly addGenerationPrompt?: boolean
  /** Tool schemas; transformers passes None when there are none. */
  readonly tools?: readonly unknown[] | null
  readonly documents?: readonly unknown[] | null
  /** Further template variables (e.g. enable_thinking for Qwen3). */
  readonly extra?: Readonly<Record<string, unknown>>
  /** The clock behind strftime_now; default now. */
  readonly now?: Date
}

/**
 * The template source, as transformers finds it: chat_template.jinja in the model
 * directory, else tokenizer_config.json's chat_template (a string, or a list of named
 * templates of which "default" is used). null when the model has none.
 */
export function readChatTemplateSource(dir: string): string | null {
  const jinjaPath = join(dir, "chat_template.jinja")
  if (existsSync(jinjaPath)) return readFileSync(jinjaPath, "utf8")
  const configPath = join(dir, "tokenizer_config.json")
  if (!existsSync(configPath)) return null
  const fail = (path: string, problem: string) => new ChatTemplateError({ message: `${path}: ${problem}` })
  const field = (readJsonFile(configPath, fail) as { chat_template?: unknown }).chat_template
  if (field == null) return null
  if (typeof field === "string") return field
  if (Array.isArray(field)) {
    const named = field.find((t) => t !== null && typeof t === "object" && (t as { name?: unknown }).name === "default")
    const template = (named as { template?: unknown } | undefined)?.template
    if (typeof template === "string") return template
    throw fail(configPath, `field "chat_template" lists named templates but none named "default"`)
  }
  throw fail(configPath, `field "chat_template" is neither a string nor a list of {name, template}`)
}

/** Loads and parses the chat template of the model in `dir`; ChatTemplateError when it has none. */
export function loadChatTemplate(dir: string, tokenizer: TextTokenizer): ChatTemplate {
  const source = readChatTemplateSource(dir)
  if (source === null) {
    throw new ChatTemplateError({
      message: `${dir}: the model has no chat template (no chat_template.jinja, no "chat_template" in tokenizer_config.json)`,
    })
  }
  return new ChatTemplate(source, tokenizer)
}

/** One-shot render + tokenize of a conversation. A server keeps a ChatTemplate instead. */
export function renderChat(
  dir: string,
  tokenizer: TextTokenizer,
  messages: readonly ChatMessage[],
  options: ChatTemplateOptions = {},
): { text: string; ids: number[] } {
  const template = loadChatTemplate(dir, tokenizer)
  const text = template.render(messages, options)
  return { text, ids: template.encode(text) }
}

export class ChatTemplate {
  private readonly template: Template

  /** Parses `source`; ChatTemplateError when it does not parse. */
  constructor(
    source: string,
    private readonly tokenizer: TextTokenizer,
  ) {
    try {
      this.template = new Template(source)
    } catch (e) {
      throw new ChatTemplateError({ message: `${tokenizer.dir}: chat template does not parse: ${errorText(e)}` })
    }
  }

  render(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    const now = options.now ?? new Date()
    const env = templateGlobals(now)
    const variables: Record<string, unknown> = {
      ...this.tokenizer.specialTokenStrings,
      ...options.extra,
      messages,
      tools: options.tools ?? null,
      documents: options.documents ?? null,
      add_generation_prompt: options.addGenerationPrompt ?? false,
    }
    try {
      for (const [name, value] of Object.entries(variables)) env.set(name, value)
      return new Interpreter(env).run(this.template.parsed).value as string
    } catch (e) {
      if (e instanceof ChatTemplateError) throw e
      throw new ChatTemplateError({ message: `chat template failed to render: ${errorText(e)}` })
    }
  }

  /** Tokenizes rendered text: the template wrote any BOS itself, so none is added. */
  encode(rendered: string): number[] {
    return this.tokenizer.encode(rendered, { addSpecialTokens: false })
  }

  /** Renders and tokenizes, as apply_chat_template(tokenize=True) does. */
  apply(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): number[] {
    return this.encode(this.render(messages, options))
  }
}

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e))

/**
 * The globals @huggingface/jinja's Template.render declares (it allows no overriding),
 * with raise_exception failing as a ChatTemplateError and strftime_now as Python's.
 */
function templateGlobals(now: Date): Environment {
  const env = new Environment()
  for (const [name, value] of [["true", true], ["false", false], ["none", null], ["True", true], ["False", false], ["None", null]] as const) {
    env.set(name, value)
  }
  env.set("range", pythonRange)
  env.set("raise_exception", (message: unknown) => {
    throw new ChatTemplateError({ message: `chat template: ${String(message)}` })
  })
  env.set("strftime_now", (format: unknown) => strftime(now, String(format)))
  return env
}

/** Python's range(stop) / range(start, stop[, step]). */
function pythonRange(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) return pythonRange(0, start, step)
  if (step === 0) throw new ChatTemplateError({ message: "chat template: range() step must not be zero" })
  const out: number[] = []
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i)
  return out
}

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]

/**
 * Python's datetime.now().strftime in the C locale, for the codes templates use
 * (Llama 3.1 writes "%d %b %Y"). @huggingface/jinja's own uses the host locale.
 */
export function strftime(date: Date, format: string): string {
  const pad = (n: number, width = 2) => String(n).padStart(width, "0")
  const hour12 = date.getHours() % 12 === 0 ? 12 : date.getHours() % 12
  const codes: Record<string, () => string> = {
    Y: () => String(date.getFullYear()),
    y: () => pad(date.getFullYear() % 100),
    m: () => pad(date.getMonth() + 1),
    d: () => pad(date.getDate()),
    e: () => String(date.getDate()).padStart(2, " "),
    B: () => MONTHS[date.getMonth()]!,
    b: () => MONTHS[date.getMonth()]!.slice(0, 3),
    A: () => DAYS[date.getDay()]!,
    a: () => DAYS[date.getDay()]!.slice(0, 3),
    H: () => pad(date.getHours()),
    I: () => pad(hour12),
    p: () => (date.getHours() < 12 ? "AM" : "PM"),
    M: () => pad(date.getMinutes()),
    S: () => pad(date.getSeconds()),
    "%": () => "%",
  }
  return format.replace(/%(.)/g, (whole, code: string) => codes[code]?.() ?? whole)
}
