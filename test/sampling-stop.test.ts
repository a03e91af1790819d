import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { ByteLevelDetokenizer } from "../src/sampling/detokenizer.ts"
import { decodeSamplingParamsSync } from "../src/sampling/SamplingParams.ts"
import { StopChecker, type TokenVerdict } from "../src/sampling/stopChecker.ts"

const encoder = new TextEncoder()
const decodeBytes = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

/** bytes of the complete UTF-8 characters at the start of `bytes` (an independent reference) */
const completeUtf8Length = (bytes: Uint8Array): number => {
  let i = 0
  while (i < bytes.length) {
    const b = bytes[i]
    const len = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2
    if (i + len > bytes.length) break
    i += len
  }
  return i
}

/** 1-, 2-, 3- and 4-byte characters, so token cuts land inside characters */
const pieces = ["a", "b", "c", " ", "é", "€", "😀", "ab", "\n"]

const caseArb = fc
  .record({
    text: fc.array(fc.constantFrom(...pieces), { minLength: 1, maxLength: 30 }).map((p) => p.join("")),
    cuts: fc.array(fc.nat(), { maxLength: 40 }),
    stopPicks: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 4 }), fc.boolean()), { maxLength: 3 }),
    extraStops: fc.array(fc.array(fc.constantFrom(...pieces), { minLength: 1, maxLength: 3 }).map((p) => p.join("")), { maxLength: 2 }),
  })
  .map(({ text, cuts, stopPicks, extraStops }) => {
    const bytes = encoder.encode(text)
    const points = [...new Set(cuts.map((c) => 1 + (c % bytes.length)))].filter((c) => c < bytes.length).sort((a, b) => a - b)
    const bounds = [0, ...points, bytes.length]
    const chunks = bounds.slice(1).map((end, i) => bytes.slice(bounds[i], end))
    // stops taken from the text (so they hit) and made up ones (which may not)
    const chars = Array.from(text)
    const fromText = stopPicks
      .filter(([, , use]) => use)
      .map(([at, len]) => chars.slice(at % chars.length, (at % chars.length) + len).join(""))
    const stops = [...new Set([...fromText, ...extraStops])].filter((s) => s.length > 0)
    return { text, chunks, stops }
  })

const run = (chunks: Uint8Array[], stops: string[]) => {
  const params = decodeSamplingParamsSync({ stop: stops, max_tokens: chunks.length })
  const detokenizer = new ByteLevelDetokenizer((id) => chunks[id]).begin([])
  const checker = new StopChecker(params, detokenizer, { promptLength: 1, eosTokenIds: [], maxModelLen: 1 << 20 })
  const verdicts: TokenVerdict[] = []
  for (let id = 0; id < chunks.length; id++) {
    verdicts.push(checker.append(id))
    if (verdicts[id].finishReason !== undefined) break
  }
  return verdicts
}

describe("stop strings over byte tokens", () => {
  it("emit exactly the text before the first stop string, hold back no more than a stop prefix, never split a character", () => {
    fc.assert(
      fc.property(caseArb, ({ chunks, stops }) => {
        const verdicts = run(chunks, stops)
        // reference: decode the complete characters after each token, look for stops there
        let expected: string | undefined
        let stopAt = -1
        let prefixes: string[] = []
        let bytes = new Uint8Array(0)
        for (let k = 0; k < chunks.length && expected === undefined; k++) {
          bytes = new Uint8Array([...bytes, ...chunks[k]])
          const prefix = decodeBytes(bytes.slice(0, completeUtf8Length(bytes)))
          prefixes.push(prefix)
          const hits = stops.map((s) => prefix.indexOf(s)).filter((i) => i >= 0)
          if (hits.length > 0) {
            expected = prefix.slice(0, Math.min(...hits))
            stopAt = k
          }
        }
        const maxStop = Math.max(1, ...stops.map((s) => s.length))
        let emitted = ""
        verdicts.forEach((v, k) => {
          emitted += v.text
          expect(emitted.isWellFormed()).toBe(true)
          expect(emitted).not.toContain("\uFFFD")
          for (const s of stops) expect(emitted).not.toContain(s)
          if (v.finishReason === undefined) {
            expect(prefixes[k].startsWith(emitted)).toBe(true)
            expect(prefixes[k].length - emitted.length).toBeLessThan(maxStop)
          }
        })
        const last = verdicts[verdicts.length - 1]
        if (expected !== undefined) {
          expect(verdicts.length).toBe(stopAt + 1)
          expect(last.finishReason).toBe("stop")
          expect(stops).toContain(last.stopReason)
          expect(emitted).toBe(expected)
        } else {
          expect(last.finishReason).toBe("length")
          expect(emitted).toBe(decodeBytes(bytes))
        }
      }),
      { numRuns: 500 },
    )
  })

  it("a stop string split across tokens, inside a split character", () => {
    const bytes = encoder.encode("Hi €uro!")
    // "€" is e2 82 ac: cut after its first byte and after its second
    const chunks = [bytes.slice(0, 4), bytes.slice(4, 5), bytes.slice(5, 7), bytes.slice(7)]
    const verdicts = run(chunks, ["€u"])
    expect(verdicts.map((v) => v.text)).toEqual(["Hi ", "", ""])
    expect(verdicts[2]).toMatchObject({ finishReason: "stop", stopReason: "€u" })
  })
})

describe("stop tokens and lengths", () => {
  const V = 10
  const EOS = 9
  const bytesOf = (id: number) => encoder.encode(String.fromCharCode(97 + id))
  const checker = (raw: Record<string, unknown>, maxModelLen = 100, promptLength = 3) =>
    new StopChecker(decodeSamplingParamsSync(raw), new ByteLevelDetokenizer(bytesOf).begin([]), {
      promptLength,
      eosTokenIds: [EOS],
      maxModelLen,
    })

  it("EOS stops without printing; before min_tokens it is just a token", () => {
    expect(checker({}).append(EOS)).toEqual({ text: "", finishReason: "stop", stopReason: undefined })
    const c = checker({ min_tokens: 2 })
    expect(c.append(EOS).finishReason).toBeUndefined()
    expect(c.append(1).finishReason).toBeUndefined()
    expect(c.append(EOS)).toEqual({ text: "", finishReason: "stop", stopReason: undefined })
  })

  it("ignore_eos generates through EOS", () => {
    expect(checker({ ignore_eos: true }).append(EOS).finishReason).toBeUndefined()
  })

  it("stop_token_ids stop with the token as stop reason and release held-back text", () => {
    const c = checker({ stop_token_ids: [4], stop: ["bcd"] })
    expect(c.append(1).text).toBe("") // "b" may begin "bcd"
    expect(c.append(4)).toEqual({ text: "b", finishReason: "stop", stopReason: 4 })
  })

  it("max_tokens and the context length end with finish reason length", () => {
    const c = checker({ max_tokens: 2 })
    expect(c.append(0).finishReason).toBeUndefined()
    expect(c.append(1)).toEqual({ text: "b", finishReason: "length", stopReason: undefined })
    const d = checker({}, 5, 3)
    expect(d.append(0).finishReason).toBeUndefined()
    expect(d.append(1).finishReason).toBe("length")
  })

  it("every token id in range is accepted", () => {
    for (let id = 0; id < V - 1; id++) expect(checker({}).append(id).text).toBe(String.fromCharCode(97 + id))
  })
})
