import type { CompletionDelta } from "../engine/Engine.ts"
import { childRequestId } from "../engine/request.ts"
import type { FinishedReason, ServerMetrics } from "../metrics/serverMetrics.ts"
import { now, type EngineMonitorService, type SequenceTiming } from "./engineMonitor.ts"

/**
 * One engine request's timings, taken where its deltas reach the server: each of its n
 * sequences is a request to the metrics, as vLLM v1 counts the children of n > 1.
 */

interface SequenceClock {
  readonly timing: SequenceTiming
  readonly unwatch: () => void
  firstTokenAt: number | undefined
  lastTokenAt: number | undefined
  numTokens: number
  finished: boolean
}

export interface RequestObserver {
  readonly onDelta: (delta: CompletionDelta) => void
  /** the stream ended: sequences that never finished (the client left, the engine failed) */
  readonly onEnd: (reason: FinishedReason) => void
}

export const observeRequest = (
  metrics: ServerMetrics,
  monitor: EngineMonitorService,
  request: {
    readonly requestId: string
    readonly promptLength: number
    readonly n: number
    readonly maxTokens: number | undefined
    readonly arrival: number
  }
): RequestObserver => {
  const sequences: SequenceClock[] = Array.from({ length: request.n }, (_, index) => {
    const timing: SequenceTiming = { scheduledAt: undefined }
    const unwatch = monitor.watch(childRequestId(request.requestId, index, request.n), timing)
    return { timing, unwatch, firstTokenAt: undefined, lastTokenAt: undefined, numTokens: 0, finished: false }
  })

  const finish = (seq: SequenceClock, reason: FinishedReason, at: number) => {
    seq.finished = true
    seq.unwatch()
    const firstTokenAt = seq.firstTokenAt ?? at
    const scheduledAt = Math.min(seq.timing.scheduledAt ?? firstTokenAt, firstTokenAt)
    metrics.onRequestFinished({
      finishedReason: reason,
      promptTokens: request.promptLength,
      generationTokens: seq.numTokens,
      ...(request.maxTokens !== undefined && { maxTokens: request.maxTokens }),
      e2eSeconds: at - request.arrival,
      queueSeconds: Math.max(0, scheduledAt - request.arrival),
      prefillSeconds: firstTokenAt - scheduledAt,
      decodeSeconds: (seq.lastTokenAt ?? firstTokenAt) - firstTokenAt
    })
  }

  return {
    onDelta: (delta) => {
      const seq = sequences[delta.index]
      if (seq === undefined || seq.finished) return
      const at = now()
      if (delta.tokenIds.length > 0) {
        monitor.onProgress()
        if (seq.firstTokenAt === undefined) {
          // it ran between the last poll (when it still waited) and now
          seq.timing.scheduledAt ??= Math.max(request.arrival, monitor.lastPollAt())
          seq.firstTokenAt = at
          metrics.observeTimeToFirstToken(at - request.arrival)
        } else {
          metrics.observeInterTokenLatency(at - seq.lastTokenAt!)
        }
        seq.lastTokenAt = at
        seq.numTokens += delta.tokenIds.length
      }
      if (delta.finishReason !== undefined) finish(seq, delta.finishReason, at)
    },
    onEnd: (reason) => {
      const at = now()
      for (const seq of sequences) if (!seq.finished) finish(seq, reason, at)
    }
  }
}
