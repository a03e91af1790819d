/**
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
 * counter-based generator cuRAND and PyTorch use on GPUs. A draw is a pure function of
 * (key, counter), so a request's random numbers depend only on its seed and the position of
 * the token being sampled: the same output alone or batched, after preemption, on another
 * replica. Everything is 32-bit unsigned integer math (`Math.imul` for the low half, a
 * 16-bit split for the high half), so the CUDA port (`__umulhi`, `a * b`) is bit-exact.
 */

const PHILOX_M0 = 0xd2511f53
const PHILOX_M1 = 0xcd9e8d57
const PHILOX_W0 = 0x9e3779b9
const PHILOX_W1 = 0xbb67ae85

/** high 32 bits of the 64-bit product of two uint32 (CUDA: `__umulhi`) */
export const mulhi32 = (a: number, b: number): number => {
  const aLo = a & 0xffff
  const aHi = a >>> 16
  const bLo = b & 0xffff
  const bHi = b >>> 16
  const loLo = aLo * bLo
  const hiLo = aHi * bLo
  const loHi = aLo * bHi
  const hiHi = aHi * bHi
  // every partial product is < 2^32 and the sums stay below 2^53: exact in float64
  const mid = (loLo >>> 16) + (hiLo & 0xffff) + (loHi & 0xffff)
  return (hiHi + (hiLo >>> 16) + (loHi >>> 16) + Math.floor(mid / 0x10000)) >>> 0
}

/**
 * Writes Philox4x32-10(counter, key) into `out[0..3]` as uint32 values.
 * Reuses `out` so the per-token sampling path allocates nothing.
 */
export const philox4x32 = (
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
  out: Uint32Array,
): Uint32Array => {
  let x0 = c0 >>> 0
  let x1 = c1 >>> 0
  let x2 = c2 >>> 0
  let x3 = c3 >>> 0
  let key0 = k0 >>> 0
  let key1 = k1 >>> 0
  for (let round = 0; round < 10; round++) {
    const hi0 = mulhi32(PHILOX_M0, x0)
    const lo0 = Math.imul(PHILOX_M0, x0) >>> 0
    const hi1 = mulhi32(PHILOX_M1, x2)
    const lo1 = Math.imul(PHILOX_M1, x2) >>> 0
    x0 = (hi1 ^ x1 ^ key0) >>> 0
    x1 = lo1
    x2 = (hi0 ^ x3 ^ key1) >>> 0
    x3 = lo0
    key0 = (key0 + PHILOX_W0) >>> 0
    key1 = (key1 + PHILOX_W1) >>> 0
  }
  out[0] = x0
  out[1] = x1
  out[2] = x2
  out[3] = x3
  return out
}

/** 2^-53: turns a 53-bit integer into a double in [0, 1) with no rounding */
const TWO_POW_MINUS_53 = 1 / 9007199254740992

/**
 * The uniform double in [0, 1) for one sampled token: 53 bits taken from the first two
 * output words (27 + 26 bits). Integer-to-double conversion of a 53-bit value is exact on
 * every IEEE machine, so the GPU computes the same double.
 */
export const philoxUniform = (
  seedLo: number,
  seedHi: number,
  position: number,
  stream: number,
  scratch: Uint32Array,
): number => {
  philox4x32(position, stream, 0, 0, seedLo, seedHi, scratch)
  const hi27 = scratch[0] >>> 5
  const lo26 = scratch[1] >>> 6
  return (hi27 * 67108864 + lo26) * TWO_POW_MINUS_53
}

/** Splits an integer seed (any safe integer, negative included) into the two key words. */
export const seedKey = (seed: number): readonly [lo: number, hi: number] => [
  seed >>> 0,
  Math.floor(seed / 4294967296) >>> 0,
]

/** A fresh seed for a request that gave none, drawn once at arrival (53 random bits). */
export const randomSeed = (): number => {
  const words = crypto.getRandomValues(new Uint32Array(2))
  return (words[0] & 0x1fffff) * 4294967296 + words[1]
}
