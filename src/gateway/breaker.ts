/**
 * A circuit breaker per upstream provider. Closed: requests flow and failures in a row are counted; at
 * `failureThreshold` it opens and the provider is skipped (requests fail over at once) for `resetMs`; then it is
 * half-open and lets exactly one probe request through: success closes it, failure opens it again.
 * Hand-written rather than opossum: the gateway's own retry loop decides what a failure is (a 400 answer shows a
 * healthy provider), and the clock is a parameter so tests can step through the states.
 */
export type BreakerState = "closed" | "open" | "half_open";

export interface BreakerOptions {
  failureThreshold: number;
  resetMs: number;
  clock: () => number;
  onChange?: (from: BreakerState, to: BreakerState) => void;
}

export class CircuitBreaker {
  private failures = 0;
  private openedAt = 0;
  private probing = false;
  private current: BreakerState = "closed";

  constructor(private readonly o: BreakerOptions) {}

  get state(): BreakerState {
    if (this.current === "open" && this.o.clock() - this.openedAt >= this.o.resetMs) this.move("half_open");
    return this.current;
  }

  /** Time until a probe may go through (0 unless open). */
  get retryAfterMs(): number {
    return this.state === "open" ? Math.max(0, this.o.resetMs - (this.o.clock() - this.openedAt)) : 0;
  }

  /** Whether one request may be sent now; when half-open, only one at a time (the probe). */
  tryAcquire(): boolean {
    const s = this.state;
    if (s === "closed") return true;
    if (s === "open" || this.probing) return false;
    this.probing = true;
    return true;
  }

  success(): void {
    this.failures = 0;
    this.probing = false;
    if (this.current !== "closed") this.move("closed");
  }

  failure(): void {
    this.probing = false;
    // A request sent before the circuit opened that fails now adds nothing: the circuit is already open.
    if (this.current === "open") return;
    if (this.current === "half_open" || ++this.failures >= this.o.failureThreshold) {
      this.failures = 0;
      this.openedAt = this.o.clock();
      this.move("open");
    }
  }

  /** A request that ended without telling anything about the provider (the client cancelled it). */
  release(): void {
    this.probing = false;
  }

  private move(to: BreakerState): void {
    const from = this.current;
    this.current = to;
    this.o.onChange?.(from, to);
  }
}
