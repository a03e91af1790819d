/**
 * A rate over the last `windowSeconds`, kept in one-second buckets: adding is O(1) and
 * allocates nothing (it runs once per engine step), and reading sums at most
 * `windowSeconds` numbers (it runs once per scrape).
 *
 * Prometheus can take rates of the counters itself; this exists for the seed's
 * `tokens_per_second` and `requests_per_second` gauges, which the router reads directly to
 * score replicas without a Prometheus server in between.
 */
export class RateWindow {
  private readonly amounts: Float64Array
  private readonly seconds: Float64Array
  private readonly startedAt: number

  constructor(
    private readonly windowSeconds: number,
    private readonly now: () => number
  ) {
    if (!(windowSeconds >= 1 && Number.isInteger(windowSeconds))) {
      throw new RangeError(`rate window must be a whole number of seconds >= 1, got ${windowSeconds}`)
    }
    this.amounts = new Float64Array(windowSeconds)
    this.seconds = new Float64Array(windowSeconds).fill(-Infinity)
    this.startedAt = now()
  }

  add(amount: number): void {
    const second = Math.floor(this.now())
    const slot = second % this.windowSeconds
    if (this.seconds[slot] !== second) {
      this.seconds[slot] = second
      this.amounts[slot] = 0
    }
    this.amounts[slot] += amount
  }

  /** Amount per second over the window; over the time since start while younger than the window. */
  perSecond(): number {
    const now = this.now()
    const oldest = Math.floor(now) - this.windowSeconds + 1
    let total = 0
    for (let slot = 0; slot < this.windowSeconds; slot++) {
      if (this.seconds[slot] >= oldest) total += this.amounts[slot]
    }
    // the window spans the current, partial second, so it covers (windowSeconds - 1) whole
    // seconds plus the fraction of the current one that has passed
    const covered = Math.min(this.windowSeconds - 1 + (now - Math.floor(now)), now - this.startedAt)
    return covered > 0 ? total / covered : 0
  }
}
