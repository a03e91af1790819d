/**
 * How a kernel call is cut across threads. Splitting costs a wake-up of each thread (a few
 * microseconds), so a call is split only when its estimated work is large; the parts are
 * ranges of the catalog's `split` role, balanced by the work of each index.
 */
import { catalog, type KernelName, type KernelSpec } from "../catalog.ts"
import type { WasmMemory } from "./memory.ts"

export interface Split {
  /** the size of the split role for these arguments */
  extent(args: ReadonlyArray<number>): number
  /** estimated elements the call touches */
  work(args: ReadonlyArray<number>): number
  /** bounds[0..parts] := a partition of [0, extent) into parts of about equal work */
  partition(args: ReadonlyArray<number>, parts: number, bounds: Int32Array): void
}

export const splitOf = (name: KernelName, memory: WasmMemory): Split | undefined => {
  const spec: KernelSpec = catalog[name]
  if (spec.split === undefined) return undefined
  return name === "paged_attention" ? attentionSplit(spec, memory) : uniformSplit(spec)
}

const scalarArg = (spec: KernelSpec, scalar: string): number => {
  const at = spec.scalars.indexOf(scalar)
  if (at < 0) throw new Error(`catalog: ${scalar} is not a scalar`)
  return spec.tensors.length + at
}

const tensorArg = (spec: KernelSpec, tensor: string): number => spec.tensors.findIndex((t) => t.name === tensor)

/**
 * Every index of the split role costs the same: the work is the size of the tensors, read
 * from their shape roles ("T", "2I", "D/2"); tensors sized by roles that are not scalars
 * (an embedding table, the KV cache) are only partly touched and left out.
 */
const uniformSplit = (spec: KernelSpec): Split => {
  const sizes = spec.tensors.flatMap((tensor) => {
    const factors = tensor.shape.map((role) => {
      const match = /^(\d*)([A-Za-z]+)(?:\/(\d+))?$/.exec(role)
      if (!match || !spec.scalars.includes(match[2])) return undefined
      return { arg: scalarArg(spec, match[2]), scale: Number(match[1] || 1) / Number(match[3] || 1) }
    })
    return factors.every((f) => f !== undefined) ? [factors] : []
  })
  const extentArg = scalarArg(spec, spec.split!)
  return {
    extent: (args) => args[extentArg],
    work: (args) => {
      let total = 0
      for (const factors of sizes) {
        let size = 1
        for (const { arg, scale } of factors) size *= args[arg] * scale
        total += size
      }
      return total
    },
    partition: (args, parts, bounds) => {
      const extent = args[extentArg]
      for (let p = 0; p <= parts; p++) bounds[p] = Math.round((p * extent) / parts)
    }
  }
}

/**
 * Work items are (token, kv head) pairs; query t reads positions[t] + 1 keys for each of its
 * kv heads, so a prefill's late queries cost more than its early ones.
 */
const attentionSplit = (spec: KernelSpec, memory: WasmMemory): Split => {
  const tokensArg = scalarArg(spec, "T")
  const kvHeadsArg = scalarArg(spec, "Hkv")
  const positionsArg = tensorArg(spec, "positions")
  const headsArg = scalarArg(spec, "Hq")
  const headDimArg = scalarArg(spec, "D")
  const keysRead = (args: ReadonlyArray<number>): Int32Array => memory.i32View(args[positionsArg], args[tokensArg])
  return {
    extent: (args) => args[tokensArg] * args[kvHeadsArg],
    work: (args) => {
      let keys = 0
      for (const position of keysRead(args)) keys += position + 1
      return keys * args[headsArg] * args[headDimArg]
    },
    partition: (args, parts, bounds) => {
      const positions = keysRead(args)
      const kvHeads = args[kvHeadsArg]
      let total = 0
      for (const position of positions) total += (position + 1) * kvHeads
      let done = 0
      let p = 1
      bounds[0] = 0
      for (let item = 0; item < positions.length * kvHeads && p < parts; item++) {
        done += positions[Math.floor(item / kvHeads)] + 1
        while (p < parts && done >= (p * total) / parts) bounds[p++] = item + 1
      }
      while (p <= parts) bounds[p++] = positions.length * kvHeads
    }
  }
}
