import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

export const fixturesDir = join(import.meta.dirname, "..", "fixtures", "models")

export interface GreedyReference {
  readonly prompt: string
  readonly prompt_ids: number[]
  readonly greedy_ids: number[]
  readonly margins: number[]
}

/** What transformers recorded for a fixture model (test/fixtures/make_fixtures.py). */
export interface Reference extends GreedyReference {
  readonly first_logits: number[]
  readonly greedy_text: string
  readonly chat: { messages: Array<{ role: string; content: string }>; rendered: string; ids: number[] }
  readonly long: GreedyReference
  readonly batch: { prompt: string; prompt_ids?: number[]; greedy_ids: number[] }
}

export const fixtureNames = (): string[] =>
  existsSync(fixturesDir) ? readdirSync(fixturesDir).filter((name) => existsSync(join(fixturesDir, name, "reference.json"))).sort() : []

export const fixturePath = (name: string): string => join(fixturesDir, name)

export const loadReference = (name: string): Reference =>
  JSON.parse(readFileSync(join(fixturesDir, name, "reference.json"), "utf8")) as Reference

/**
 * The number of leading greedy ids that must match: up to (not including) the first step
 * whose reference top-1/top-2 margin is under `minMargin`, where f32 rounding differences
 * may legitimately flip the choice.
 */
export const confidentPrefix = (margins: ReadonlyArray<number>, minMargin = 1e-2): number => {
  const low = margins.findIndex((m) => m < minMargin)
  return low < 0 ? margins.length : low
}
