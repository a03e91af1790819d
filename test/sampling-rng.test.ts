import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { mulhi32, philox4x32, philoxUniform, seedKey } from "../src/sampling/philox.ts"

const hex = (words: Uint32Array) => Array.from(words, (w) => w.toString(16).padStart(8, "0")).join(" ")

describe("Philox4x32-10", () => {
  // Random123's known-answer vectors (kat_vectors, philox4x32 10 rounds)
  it.each([
    [[0, 0, 0, 0], [0, 0], "6627e8d5 e169c58d bc57ac4c 9b00dbd8"],
    [[0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], "408f276d 41c83b0e a20bc7c6 6d5451fd"],
    [[0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0], "d16cfe09 94fdcceb 5001e420 24126ea1"],
  ])("counter %j key %j -> %s", (c, k, expected) => {
    expect(hex(philox4x32(c[0], c[1], c[2], c[3], k[0], k[1], new Uint32Array(4)))).toBe(expected)
  })

  it("mulhi32 is the high word of the exact 64-bit product", () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff }), (a, b) => {
        expect(mulhi32(a, b)).toBe(Number((BigInt(a) * BigInt(b)) >> 32n))
      }),
      { numRuns: 2000 },
    )
  })

  it("uniforms lie in [0, 1), depend only on (seed, position, stream), and use 53 bits", () => {
    const scratch = new Uint32Array(4)
    fc.assert(
      fc.property(fc.maxSafeInteger(), fc.nat(), fc.nat({ max: 127 }), (seed, position, stream) => {
        const [lo, hi] = seedKey(seed)
        const u = philoxUniform(lo, hi, position, stream, scratch)
        expect(u).toBeGreaterThanOrEqual(0)
        expect(u).toBeLessThan(1)
        expect(Number.isInteger(u * 2 ** 53)).toBe(true)
        philoxUniform(lo ^ 1, hi, position + 1, stream, scratch)
        expect(philoxUniform(lo, hi, position, stream, scratch)).toBe(u)
      }),
      { numRuns: 500 },
    )
  })

  it("a uniform is the top 27 bits of word 0 over the top 26 bits of word 1, over 2^53 (the CUDA port's contract)", () => {
    // counter (position 0, stream 0, 0, 0), key 0: the first known-answer vector
    const bits = (BigInt(0x6627e8d5 >>> 5) << 26n) | BigInt(0xe169c58d >>> 6)
    expect(philoxUniform(0, 0, 0, 0, new Uint32Array(4))).toBe(Number(bits) / 2 ** 53)
  })

  it("seedKey splits negative and large seeds as two's complement words", () => {
    expect(seedKey(0)).toEqual([0, 0])
    expect(seedKey(-1)).toEqual([0xffffffff, 0xffffffff])
    expect(seedKey(2 ** 32 + 5)).toEqual([5, 1])
    expect(seedKey(Number.MAX_SAFE_INTEGER)).toEqual([0xffffffff, 0x1fffff])
  })

  it("uniforms are uniform: mean and decile counts over 20000 positions", () => {
    const scratch = new Uint32Array(4)
    const bins = new Array(10).fill(0)
    let sum = 0
    const N = 20000
    for (let p = 0; p < N; p++) {
      const u = philoxUniform(42, 0, p, 0, scratch)
      sum += u
      bins[Math.floor(u * 10)]++
    }
    expect(Math.abs(sum / N - 0.5)).toBeLessThan(0.01)
    const chi2 = bins.reduce((a, c) => a + (c - N / 10) ** 2 / (N / 10), 0)
    // 9 degrees of freedom: P(chi2 > 27.9) < 0.001
    expect(chi2).toBeLessThan(27.9)
  })
})
