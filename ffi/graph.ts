/**
 * Symbols of CUDA graphs and events (cuda/graph.cu). Each entry gives the C declaration of
 * tessera_cuda.h; test/cuda-abi.test.ts checks them against the header.
 */
import { FFIType, type FFIFunction } from "bun:ffi"

export const graphSymbols = {
  /** int tsr_graph_begin(tsr_context* ctx) */
  tsr_graph_begin: { args: [FFIType.ptr], returns: FFIType.i32 },
  /** int tsr_graph_end(tsr_context* ctx, void** exec) */
  tsr_graph_end: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  /** int tsr_graph_launch(tsr_context* ctx, void* exec) */
  tsr_graph_launch: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  /** int tsr_graph_destroy(tsr_context* ctx, void* exec) */
  tsr_graph_destroy: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  /** int tsr_event_create(tsr_context* ctx, void** out) */
  tsr_event_create: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  /** int tsr_event_record(tsr_context* ctx, void* event) */
  tsr_event_record: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  /** int tsr_event_elapsed(tsr_context* ctx, void* start, void* end, float* ms) */
  tsr_event_elapsed: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  /** int tsr_event_query(tsr_context* ctx, void* event, int* done) */
  tsr_event_query: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  /** int tsr_event_destroy(tsr_context* ctx, void* event) */
  tsr_event_destroy: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 }
} as const satisfies Record<string, FFIFunction>
