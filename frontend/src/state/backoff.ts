/**
 * Reconnect delays: exponential growth with "full jitter" (a random delay in
 * [base, cap]), so that a server restart is not met by every open page
 * reconnecting in the same millisecond.
 */
export interface BackoffOptions {
  /** First delay in ms. */
  initialMs: number;
  /** Largest delay in ms. */
  maxMs: number;
  /** Growth per failed attempt. */
  factor: number;
  /** 0..1: share of the delay that is randomised. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = {
  initialMs: 250,
  maxMs: 10_000,
  factor: 2,
  jitter: 0.5,
};

/**
 * Delay before reconnect attempt number `attempt` (0 = first retry).
 * `random` is injectable so the tests are deterministic.
 */
export function backoffDelay(
  attempt: number,
  opts: BackoffOptions = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const exp = Math.min(opts.maxMs, opts.initialMs * opts.factor ** Math.max(0, attempt));
  const spread = exp * opts.jitter;
  return Math.round(exp - spread + random() * spread);
}

/** Counts attempts; reset when a connection has really come up. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly opts: BackoffOptions = DEFAULT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    return backoffDelay(this.attempt++, this.opts, this.random);
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
