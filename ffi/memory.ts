/**
 * Symbols of device memory (cuda/memory.cu). Each entry gives the C declaration of
 * tessera_cuda.h; test/cuda-abi.test.ts checks them against the header.
 */
import { FFIType, type FFIFunction } from "bun:ffi"

export const memorySymbols = {
  /** int tsr_malloc(tsr_context* ctx, void** out, size_t bytes) */
  tsr_malloc: { args: [FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  /** int tsr_free(tsr_context* ctx, void* ptr) */
  tsr_free: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  /** int tsr_write(tsr_context* ctx, void* dst, const void* src, size_t bytes) */
  tsr_write: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  /** int tsr_read(tsr_context* ctx, void* dst, const void* src, size_t bytes) */
  tsr_read: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  /** int tsr_write_bf16(tsr_context* ctx, tsr_bf16* dst, const float* src, size_t n) */
  tsr_write_bf16: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  /** int tsr_read_bf16(tsr_context* ctx, float* dst, const tsr_bf16* src, size_t n) */
  tsr_read_bf16: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i32 }
} as const satisfies Record<string, FFIFunction>
