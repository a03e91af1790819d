/**
 * Symbols of the context, its stream and error reporting (cuda/context.cu). Each entry gives
 * the C declaration of tessera_cuda.h; test/cuda-abi.test.ts checks them against the header.
 */
import { FFIType, type FFIFunction } from "bun:ffi"

export const contextSymbols = {
  /** const char* tsr_last_error(void) */
  tsr_last_error: { args: [], returns: FFIType.cstring },
  /** int tsr_context_create(int device, tsr_context** out) */
  tsr_context_create: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  /** int tsr_context_destroy(tsr_context* ctx) */
  tsr_context_destroy: { args: [FFIType.ptr], returns: FFIType.i32 },
  /** int tsr_synchronize(tsr_context* ctx) */
  tsr_synchronize: { args: [FFIType.ptr], returns: FFIType.i32 },
  /** int tsr_device_name(tsr_context* ctx, char* name, int bytes) */
  tsr_device_name: { args: [FFIType.ptr, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  /** int tsr_mem_info(tsr_context* ctx, size_t* free_bytes, size_t* total_bytes) */
  tsr_mem_info: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 }
} as const satisfies Record<string, FFIFunction>
