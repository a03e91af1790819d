// CUDA graphs and events: a decode step is captured once per batch-size bucket and replayed,
// so its few hundred launches cost one; events time the device's share of a step.
//
// Capture is thread-local: only this thread's calls on the context's stream are recorded, and
// nothing it does may allocate or wait (the staging buffer is allocated before capture begins).
#include "context.cuh"

using tsr::check;
using tsr::fail;

extern "C" int tsr_graph_begin(tsr_context* ctx) {
  TSR_REQUIRE_CONTEXT(ctx);
  if (int status = tsr::ensure_staging(ctx)) return status;
  return check(cudaStreamBeginCapture(ctx->stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
}

extern "C" int tsr_graph_end(tsr_context* ctx, void** exec) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(exec != nullptr, "tsr_graph_end: null out");
  *exec = nullptr;
  cudaGraph_t graph = nullptr;
  // ending always leaves capture mode, also after a failed call inside it invalidated the capture
  if (int status = check(cudaStreamEndCapture(ctx->stream, &graph), "cudaStreamEndCapture")) return status;
  cudaGraphExec_t instance = nullptr;
  const int status = check(cudaGraphInstantiate(&instance, graph, 0), "cudaGraphInstantiate");
  cudaGraphDestroy(graph);
  if (status != TSR_OK) return status;
  *exec = instance;
  return TSR_OK;
}

extern "C" int tsr_graph_launch(tsr_context* ctx, void* exec) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(exec != nullptr, "tsr_graph_launch: null graph");
  return check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec), ctx->stream), "cudaGraphLaunch");
}

extern "C" int tsr_graph_destroy(tsr_context* ctx, void* exec) {
  TSR_REQUIRE_CONTEXT(ctx);
  if (exec == nullptr) return TSR_OK;
  return check(cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec)), "cudaGraphExecDestroy");
}

extern "C" int tsr_event_create(tsr_context* ctx, void** out) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(out != nullptr, "tsr_event_create: null out");
  *out = nullptr;
  cudaEvent_t event = nullptr;
  if (int status = check(cudaEventCreate(&event), "cudaEventCreate")) return status;
  *out = event;
  return TSR_OK;
}

extern "C" int tsr_event_record(tsr_context* ctx, void* event) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(event != nullptr, "tsr_event_record: null event");
  return check(cudaEventRecord(static_cast<cudaEvent_t>(event), ctx->stream), "cudaEventRecord");
}

extern "C" int tsr_event_elapsed(tsr_context* ctx, void* start, void* end, float* ms) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(start != nullptr && end != nullptr && ms != nullptr, "tsr_event_elapsed: null argument");
  if (int status = check(cudaEventSynchronize(static_cast<cudaEvent_t>(end)), "cudaEventSynchronize")) return status;
  return check(cudaEventElapsedTime(ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)), "cudaEventElapsedTime");
}

extern "C" int tsr_event_query(tsr_context* ctx, void* event, int* done) {
  TSR_REQUIRE_CONTEXT(ctx);
  TSR_REQUIRE(event != nullptr && done != nullptr, "tsr_event_query: null argument");
  const cudaError_t status = cudaEventQuery(static_cast<cudaEvent_t>(event));
  *done = status == cudaSuccess;
  // not ready is an answer, not a failure; any other status is a fault of the work before it
  return status == cudaErrorNotReady ? TSR_OK : check(status, "cudaEventQuery");
}

extern "C" int tsr_event_destroy(tsr_context* ctx, void* event) {
  TSR_REQUIRE_CONTEXT(ctx);
  if (event == nullptr) return TSR_OK;
  return check(cudaEventDestroy(static_cast<cudaEvent_t>(event)), "cudaEventDestroy");
}
