import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { loadModelExecutor, type ModelExecutor } from "../src/engine/modelExecutor.ts"
import { logitsOf } from "../src/engine/executor.ts"
import { loadTokenizer } from "../src/tokenizer/tokenizer.ts"
import { renderChat } from "../src/tokenizer/chatTemplate.ts"
import { contiguousPlan } from "../src/engine/contiguousPlan.ts"
import { greedyBatch } from "../src/engine/greedyBatch.ts"
import { confidentPrefix, fixtureNames, fixturePath, loadReference, type GreedyReference } from "./helpers/fixtures.ts"

const names = fixtureNames()
const blockSize = 16

const expectGreedy = (actual: number[], reference: GreedyReference) => {
  const n = confidentPrefix(reference.margins)
  expect(n).toBeGreaterThan(0)
  expect(actual.slice(0, n)).toEqual(reference.greedy_ids.slice(0, n))
}

describe.skipIf(names.length === 0)("golden outputs against transformers", () => {
  describe.each(names)("%s", (name) => {
    const reference = loadReference(name)
    let executor: ModelExecutor
    beforeAll(async () => {
      executor = await loadModelExecutor(fixturePath(name), { threads: 1, maxNumSeqs: 4, maxModelLen: 256 })
    })
    afterAll(() => Effect.runPromise(executor.close()))

    it("tokenizes the prompt as transformers does", async () => {
      const tokenizer = await loadTokenizer(fixturePath(name))
      expect(tokenizer.encode(reference.prompt, { addSpecialTokens: true })).toEqual(reference.prompt_ids)
    })

    it("renders the chat template as transformers does", async () => {
      const tokenizer = await loadTokenizer(fixturePath(name))
      const chat = await renderChat(fixturePath(name), tokenizer, reference.chat.messages, { addGenerationPrompt: true })
      expect(chat.text).toBe(reference.chat.rendered)
      expect(chat.ids).toEqual(reference.chat.ids)
    })

    it("first-step logits within 1e-3", async () => {
      const plan = contiguousPlan([reference.prompt_ids], [0], blockSize, Math.ceil(reference.prompt_ids.length / blockSize))
      const logits = logitsOf(await Effect.runPromise(executor.execute(plan)))
      expect(logits.length).toBe(reference.first_logits.length)
      let worst = 0
      reference.first_logits.forEach((expected, v) => (worst = Math.max(worst, Math.abs(logits[v] - expected))))
      expect(worst).toBeLessThan(1e-3)
    })

    it("greedy continuation identical up to the first low-margin step", async () => {
      const [output] = await greedyBatch(executor, [reference.prompt_ids], reference.greedy_ids.length)
      expectGreedy(output, reference)
    })

    it("long prompt over several KV blocks, laid out in reverse", async () => {
      const [output] = await greedyBatch(executor, [reference.long.prompt_ids], reference.long.greedy_ids.length, { reverseBlocks: true })
      expectGreedy(output, reference.long)
    })

    it("batched with another prompt, each output unchanged", async () => {
      const [a, b] = await greedyBatch(executor, [reference.prompt_ids, reference.long.prompt_ids], 8)
      expectGreedy(a, { ...reference, greedy_ids: reference.greedy_ids.slice(0, 8), margins: reference.margins.slice(0, 8) })
      expectGreedy(b, { ...reference.long, greedy_ids: reference.long.greedy_ids.slice(0, 8), margins: reference.long.margins.slice(0, 8) })
    })
  })
})
