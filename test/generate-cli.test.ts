import { spawnSync } from "node:child_process"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { confidentPrefix, fixtureNames, fixturePath, loadReference } from "./helpers/fixtures.ts"

const root = join(import.meta.dirname, "..")
const generate = (args: string[]) =>
  spawnSync(process.execPath, ["src/cli/generate.ts", ...args], { cwd: root, encoding: "utf8", timeout: 60_000 })

describe("bun run generate", () => {
  it.each(fixtureNames())("%s: prints transformers' greedy continuation", (name) => {
    const reference = loadReference(name)
    const run = generate(["--model", fixturePath(name), "--prompt", reference.prompt, "--max-tokens", String(reference.greedy_ids.length), "--temperature", "0", "--ignore-eos", "--json", "--threads", "1"])
    expect(run.stderr).toBe("")
    expect(run.status).toBe(0)
    const out = JSON.parse(run.stdout) as { prompt_ids: number[]; output_ids: number[]; text: string }
    expect(out.prompt_ids).toEqual(reference.prompt_ids)
    const n = confidentPrefix(reference.margins)
    expect(out.output_ids.slice(0, n)).toEqual(reference.greedy_ids.slice(0, n))
    // Invalid UTF-8 from byte-fallback tokens: a full decode replaces each byte, while
    // streaming joins bytes across tokens as they arrive (as vLLM's does), so compare text
    // only where the reference has no replacement characters.
    if (n === reference.greedy_ids.length && !reference.greedy_text.includes("\ufffd")) expect(out.text).toBe(reference.greedy_text)
  })

  it("streams text to stdout without --json", () => {
    const reference = loadReference("qwen3")
    const run = generate(["--model", fixturePath("qwen3"), "--prompt", reference.prompt, "--max-tokens", "24", "--temperature", "0", "--ignore-eos"])
    expect(run.status).toBe(0)
    expect(run.stdout).toBe(`${reference.greedy_text}\n`)
  })

  it("--chat applies the chat template", () => {
    const reference = loadReference("qwen3")
    const user = reference.chat.messages.find((m) => m.role === "user")!
    const run = generate(["--model", fixturePath("qwen3"), "--prompt", user.content, "--chat", "--max-tokens", "2", "--json"])
    expect(run.status).toBe(0)
    const out = JSON.parse(run.stdout) as { prompt_ids: number[] }
    if (reference.chat.messages.length === 1) expect(out.prompt_ids).toEqual(reference.chat.ids)
    else expect(out.prompt_ids.length).toBeGreaterThan(0)
  })

  it("rejects a bad flag value with a clear message and a non-zero exit", () => {
    const run = generate(["--prompt", "hi", "--max-tokens", "abc"])
    expect(run.status).not.toBe(0)
    expect(run.stderr).toMatch(/max-tokens|maxTokens/)
    const unknown = generate(["--prompt", "hi", "--bogus"])
    expect(unknown.status).not.toBe(0)
    expect(unknown.stderr).toContain("--bogus")
  })

  it("names the missing model directory", () => {
    const run = generate(["--model", "/nonexistent/model", "--prompt", "hi"])
    expect(run.status).not.toBe(0)
    expect(run.stderr).toContain("/nonexistent/model")
  })

  it("loads a pipeline plugin by module specifier", () => {
    const reference = loadReference("qwen3")
    const banned = reference.greedy_ids[0]
    const forced = reference.greedy_ids[1] === banned ? reference.greedy_ids[2] : reference.greedy_ids[1]
    const plugin = `./src/plugins/logitBias.ts={"bias":{"${banned}":-100,"${forced}":100}}`
    const run = generate(["--model", fixturePath("qwen3"), "--prompt", reference.prompt, "--max-tokens", "3", "--temperature", "0", "--ignore-eos", "--json", "--pipeline-plugin", plugin])
    expect(run.stderr).toBe("")
    const out = JSON.parse(run.stdout) as { output_ids: number[] }
    expect(out.output_ids).toEqual([forced, forced, forced])
    const bad = generate(["--prompt", "hi", "--pipeline-plugin", `./src/plugins/logitBias.ts={"bias":{"x":1}}`])
    expect(bad.status).not.toBe(0)
    expect(bad.stderr).toContain("logitBias.ts")
  })
})
