/**
 * The WASM provider's allocator: first fit over a free list, 64-byte aligned, coalescing,
 * growing the shared memory on demand up to its limit.
 */
import { describe, expect, it } from "vitest"
import { WasmMemory } from "../src/kernels/wasm/memory.ts"

const page = 65536
const memoryOf = (initialPages: number, maximumPages: number, heapBase = 1000) =>
  new WasmMemory(new WebAssembly.Memory({ initial: initialPages, maximum: maximumPages, shared: true }), heapBase, maximumPages * page)

describe("WasmMemory", () => {
  it("starts past the heap base, aligns to 64 bytes, reuses and coalesces freed blocks", () => {
    const memory = memoryOf(1, 4)
    const [a, b, c] = [memory.alloc(100), memory.alloc(64), memory.alloc(1)]
    expect([a, b - a, c - b]).toEqual([1024, 128, 64])
    expect(memory.usedBytes).toBe(256)
    memory.free(b)
    expect(memory.alloc(10)).toBe(b) // first fit: the hole b left
    memory.free(b)
    memory.free(a)
    expect(memory.alloc(192)).toBe(a) // a and b merged into one hole
    memory.free(a)
    memory.free(c)
    expect(memory.usedBytes).toBe(0)
    expect(memory.alloc(page)).toBe(a) // everything went back to the top
    expect(() => memory.free(a + 64)).toThrow(/not a pointer/)
  })

  it("grows past its initial size, keeping earlier data and views", () => {
    const memory = memoryOf(1, 1024)
    const small = memory.alloc(16)
    memory.write(small, Float32Array.of(1, 2, 3, 4))
    const early = memory.f32View(small, 4)
    const big = memory.alloc(32 << 20)
    memory.f32View(big, 8 << 20).fill(7)
    expect(memory.wasm.buffer.byteLength).toBeGreaterThanOrEqual(big + (32 << 20))
    const back = new Float32Array(4)
    memory.read(small, back)
    expect(Array.from(back)).toEqual([1, 2, 3, 4])
    expect(Array.from(early)).toEqual([1, 2, 3, 4]) // shared memory does not move when it grows
    expect(memory.f32View(big + (32 << 20) - 4, 1)[0]).toBe(7)
  })

  it("says so when the memory is exhausted", () => {
    const memory = memoryOf(1, 16)
    memory.alloc(8 * page)
    expect(() => memory.alloc(8 * page)).toThrow(/WASM memory exhausted: alloc\(524288\)/)
    expect(() => memory.alloc(-1)).toThrow(/not a byte count/)
  })
})
