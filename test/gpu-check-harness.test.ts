/**
 * bench/gpu-check-kernels.ts's cases run on the WASM provider against a second WASM provider:
 * each case's arguments match the catalog and every output is written, so that a device run
 * spends its minutes on the kernels, not on the harness.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { checkKernels } from "../bench/gpu-check-kernels.ts"
import { createWasmProvider, type WasmKernelProvider } from "../src/kernels/wasm/provider.ts"

let a: WasmKernelProvider
let b: WasmKernelProvider
beforeAll(async () => {
  a = await createWasmProvider({ threads: 1 })
  b = await createWasmProvider({ threads: 1 })
}, 120_000)
afterAll(() => {
  a?.close()
  b?.close()
})

describe("the GPU kernel check's harness", () => {
  it("passes every case with WASM on both sides", () => {
    const results = checkKernels(a, b)
    expect(results.length).toBeGreaterThan(0)
    expect(results.filter((r) => !r.pass).map((r) => `${r.kernel} ${r.case} ${r.output}: ${r.note}`)).toEqual([])
  })
})
