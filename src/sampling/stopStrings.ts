/**
 * Streams text while watching for stop strings. Text is held back while its tail could
 * still grow into a stop string, so nothing at or after a stop string is ever emitted,
 * even when the stop string is split across tokens. The held-back tail is a prefix of a
 * well-formed stop string, so cutting there never splits a character.
 */
export class StopStringMatcher {
  /** decoded text not emitted yet */
  private pending = ""
  /** the stop string that matched, once one has */
  matched: string | undefined = undefined

  constructor(private readonly stops: ReadonlyArray<string>) {}

  /** Adds newly decoded text; returns the text that is now safe to emit. */
  push(text: string): string {
    if (this.matched !== undefined) return ""
    if (this.stops.length === 0) return text
    const pending = this.pending + text
    let cut = -1
    for (const stop of this.stops) {
      const at = pending.indexOf(stop)
      if (at !== -1 && (cut === -1 || at < cut)) {
        cut = at
        this.matched = stop
      }
    }
    if (cut !== -1) {
      this.pending = ""
      return pending.slice(0, cut)
    }
    const hold = this.longestStopPrefixSuffix(pending)
    this.pending = pending.slice(pending.length - hold)
    return pending.slice(0, pending.length - hold)
  }

  /** The held-back tail, for when the sequence ends for another reason. */
  flush(): string {
    const rest = this.pending
    this.pending = ""
    return rest
  }

  /** length of the longest suffix of `text` that is a proper prefix of some stop string */
  private longestStopPrefixSuffix(text: string): number {
    let best = 0
    for (const stop of this.stops) {
      for (let len = Math.min(stop.length - 1, text.length); len > best; len--) {
        if (text.endsWith(stop.slice(0, len))) {
          best = len
          break
        }
      }
    }
    return best
  }
}
