import { philoxUniform, seedKey } from "../../src/sampling/philox.ts"

/**
 * Prompts for the serving benchmark: random ones of about `inputLen` tokens, or the
 * `prompt` fields of a JSONL file.
 *
 * The benchmark has no tokenizer, so a random prompt is `inputLen` common English words:
 * each is one token in the BPE vocabularies of Llama, Qwen and GPT models once it carries
 * its leading space. The server's `usage.prompt_tokens` gives the exact count when it sends
 * one. Every prompt draws its own words so that no two share a prefix the prefix cache could
 * serve, as vLLM's random dataset does.
 */

const words = (
  "the of and to in is was for on are with as at be this from have or by one had not but what all were " +
  "when we there can an your which their said if do will each about how up out them then she many some so " +
  "these would other into has more her two like him see time could no make than first been its who now " +
  "people my made over did down only way find use may water long little very after words called just where " +
  "most know get through back much go good new write our me man too any day same right look think also " +
  "around another came come work three word must because does part even place well such here take why things"
).split(" ")

export const randomPrompts = (count: number, inputLen: number, seed: number): Array<string> => {
  const [lo, hi] = seedKey(seed)
  const scratch = new Uint32Array(4)
  return Array.from({ length: count }, (_, request) => {
    const prompt = new Array<string>(inputLen)
    for (let i = 0; i < inputLen; i++) {
      // stream 1 + request keeps each prompt's draws apart from the arrival times' stream 0
      prompt[i] = words[Math.floor(philoxUniform(lo, hi, i, 1 + request, scratch) * words.length)]
    }
    return prompt.join(" ")
  })
}

/** `count` prompts from a JSONL file of {"prompt": string}, cycling if it has fewer. */
export const datasetPrompts = async (path: string, count: number): Promise<Array<string>> => {
  const lines = (await Bun.file(path).text()).split("\n").filter((line) => line.trim() !== "")
  const prompts = lines.map((line, i) => {
    const record = JSON.parse(line) as { prompt?: unknown }
    if (typeof record.prompt !== "string") throw new Error(`${path}:${i + 1}: no string "prompt" field`)
    return record.prompt
  })
  if (prompts.length === 0) throw new Error(`${path}: no prompts`)
  return Array.from({ length: count }, (_, i) => prompts[i % prompts.length])
}

/** the word count, the only size estimate there is without the model's tokenizer */
export const estimateTokens = (prompt: string): number => prompt.split(/\s+/).filter(Boolean).length
