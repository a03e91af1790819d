/**
 * The C ABI of libtessera_cuda (cuda/tessera_cuda.h) against its two descriptions on the
 * TypeScript side: the kernel declarations must be exactly what the catalog derives
 * (ffi/kernels.ts, cSignature), and every bun:ffi symbol table entry must match the header's
 * parameter and return types. Runs anywhere: it reads the header, it loads nothing.
 */
import { FFIType } from "bun:ffi"
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { cSignature, kernelNames } from "../ffi/kernels.ts"
import { symbols } from "../ffi/library.ts"
import { catalog, f32Scalars } from "../src/kernels/catalog.ts"

const header = readFileSync(new URL("../cuda/tessera_cuda.h", import.meta.url), "utf8")

/** every `<return> tsr_name(<params>);` of the header, whitespace normalised */
const declarations = new Map(
  [...header.matchAll(/^((?:const )?\w+\*?)\s+(tsr_\w+)\(([^)]*)\);/gm)].map(([, returns, name, params]) => [
    name,
    { returns, params: params.trim() === "void" ? [] : params.split(",").map((p) => p.trim().replace(/\s+/g, " ")) }
  ])
)

/** the FFI type a C parameter or return type crosses as */
const ffiTypeOf = (cType: string): FFIType => {
  if (cType === "const char*") return FFIType.cstring
  if (cType.endsWith("*")) return FFIType.ptr
  const scalar: Record<string, FFIType> = { int: FFIType.i32, float: FFIType.f32, size_t: FFIType.u64 }
  if (!(cType in scalar)) throw new Error(`no FFI type for C type ${cType}`)
  return scalar[cType]
}

/** "const tsr_bf16* x" -> "const tsr_bf16*" */
const typeOfParam = (param: string): string => param.replace(/\s*\w+$/, "").replace(/\s+\*/g, "*")

describe("libtessera_cuda C ABI", () => {
  it("declares one kernel per catalog entry, with the catalog's arguments in the catalog's order", () => {
    for (const name of kernelNames) {
      const declared = declarations.get(`tsr_${name}`)
      expect(declared, `tsr_${name} in tessera_cuda.h`).toBeDefined()
      expect(`int tsr_${name}(${declared!.params.join(", ")})`).toBe(cSignature(name))
    }
  })

  it("binds every declared function, and binds each as the header declares it", () => {
    expect(new Set(Object.keys(symbols))).toEqual(new Set(declarations.keys()))
    for (const [name, declared] of declarations) {
      const bound = symbols[name as keyof typeof symbols]
      expect(bound.returns, `${name} returns`).toBe(ffiTypeOf(declared.returns))
      expect(bound.args, `${name} arguments`).toEqual(declared.params.map((p) => ffiTypeOf(typeOfParam(p))))
    }
  })

  it("gives every scalar a C type: f32Scalars are float, the rest int", () => {
    const scalars = new Set<string>(Object.values(catalog).flatMap((spec) => [...spec.scalars]))
    for (const name of f32Scalars) expect(scalars.has(name), `${name} is a scalar of some kernel`).toBe(true)
  })
})
