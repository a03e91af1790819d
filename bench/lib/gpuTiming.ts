/**
 * Median milliseconds per call of work enqueued on a GPU: `iters` calls per sample, the
 * device synchronised around each sample so the time is the device's, not the launches'.
 */
export const timeOnDevice = (device: { synchronize(): void }, fn: () => void, iters: number): number => {
  for (let i = 0; i < 3; i++) fn()
  device.synchronize()
  const samples: number[] = []
  for (let r = 0; r < 5; r++) {
    const start = performance.now()
    for (let i = 0; i < iters; i++) fn()
    device.synchronize()
    samples.push((performance.now() - start) / iters)
  }
  return samples.sort((a, b) => a - b)[2]
}
