import { spawnSync } from "node:child_process"
import { join } from "node:path"
import { describe, expect, it } from "vitest"

/**
 * The CUDA decode runner on any CPU: bench/gpu-emulate.ts runs it over a stand-in provider whose
 * "graphs" record every kernel call and copy and replay them, through every decode mode on the
 * fixture models and a padded batch against the executor's own path (see its header). Here it
 * runs as CI's guard on the graph path's plan handling, which no GPU-less test reaches otherwise.
 */
describe("the CUDA decode runner, emulated", () => {
  it("replays every decode mode of the fixture models with the executor's results", () => {
    const script = join(import.meta.dirname, "..", "bench", "gpu-emulate.ts")
    const run = spawnSync(process.execPath, [script], { encoding: "utf8", timeout: 240_000 })
    expect(run.stdout + run.stderr).toContain("EMULATION PASS")
    expect(run.status).toBe(0)
  }, 300_000)
})
