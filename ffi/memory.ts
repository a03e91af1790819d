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
  tsr_read_bf16: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  /** int tsr_host_alloc(tsr_context* ctx, void** out, size_t bytes) */
  tsr_host_alloc: { args: [FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  /** int tsr_host_free(tsr_context* ctx, void* ptr) */
  tsr_host_free: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  /** int tsr_read_bf16_async(tsr_context* ctx, float* dst, const tsr_bf16* src, size_t n) */
  tsr_read_bf16_async: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  /** int tsr_read_async(tsr_context* ctx, void* dst, const void* src, size_t bytes) */
  tsr_read_async: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  /** int tsr_fill_uniform(tsr_context* ctx, tsr_bf16* dst, size_t rows, size_t cols, size_t width, size_t first, int seed, float offset, float scale) */
  tsr_fill_uniform: {
    args: [FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.u64, FFIType.u64, FFIType.u64, FFIType.i32, FFIType.f32, FFIType.f32],
    returns: FFIType.i32
  }
} as const satisfies Record<string, FFIFunction>
