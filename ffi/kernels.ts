/**
 * Symbols of the kernels, derived from the catalog: one description, two providers. Kernel
 * `name` is `int tsr_<name>(tsr_context* ctx, <tensors...>, <scalars...>)`, a tensor is a
 * device pointer (bf16 for `float`, float for `f32`, int32_t for `i32`; const unless the
 * kernel writes it) and a scalar an int or a float (`scalarType`). `cSignature` writes that
 * declaration; test/cuda-abi.test.ts checks it against cuda/tessera_cuda.h.
 */
import { FFIType, type FFIFunction } from "bun:ffi"
import { catalog, scalarType, type DType, type KernelName } from "../src/kernels/catalog.ts"

export const kernelNames = Object.keys(catalog) as KernelName[]

export const kernelSymbol = (name: KernelName): `tsr_${KernelName}` => `tsr_${name}`

const cTensorType: Record<DType, string> = { float: "tsr_bf16", f32: "float", i32: "int32_t" }

/** the C declaration of kernel `name`, as tessera_cuda.h writes it (without the `;`) */
export const cSignature = (name: KernelName): string => {
  const spec = catalog[name]
  const tensors = spec.tensors.map((t) => `${t.out ? "" : "const "}${cTensorType[t.dtype]}* ${t.name}`)
  const scalars = spec.scalars.map((s) => `${scalarType(s) === "f32" ? "float" : "int"} ${s}`)
  return `int ${kernelSymbol(name)}(${["tsr_context* ctx", ...tensors, ...scalars].join(", ")})`
}

const ffiFunction = (name: KernelName): FFIFunction => {
  const spec = catalog[name]
  return {
    args: [
      FFIType.ptr,
      ...spec.tensors.map(() => FFIType.ptr),
      ...spec.scalars.map((s) => (scalarType(s) === "f32" ? FFIType.f32 : FFIType.i32))
    ],
    returns: FFIType.i32
  }
}

export const kernelSymbols: Record<`tsr_${KernelName}`, FFIFunction> = Object.fromEntries(
  kernelNames.map((name) => [kernelSymbol(name), ffiFunction(name)])
) as Record<`tsr_${KernelName}`, FFIFunction>
