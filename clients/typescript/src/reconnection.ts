export interface ReconnectionConfig {
  maxAttempts: number;
  baseDelay: number;
  maxDelay: number;
  backoffFactor: number;
  jitter: boolean;
}

export const DEFAULT_RECONNECTION_CONFIG: Readonly<ReconnectionConfig> = Object.freeze({
  maxAttempts: 5,
  baseDelay: 1000,
  maxDelay: 30000,
  backoffFactor: 2,
  jitter: true,
});

/** One scheduled retry: the `attempt`-th (from 1) after `delay` ms. */
export interface ReconnectionSchedule {
  namespace: string;
  attempt: number;
  delay: number;
}

/**
 * The spec's backoff (base × factor^attempts, capped at maxDelay, times a jitter in [0.5, 1.0)), per
 * namespace, plus the timers that act on it: `schedule` runs a retry after `calculateDelay` and counts
 * the attempt; `resetAttempts` after a successful connect; nothing is scheduled past `maxAttempts`.
 */
export class ReconnectionManager {
  readonly config: Readonly<ReconnectionConfig>;
  private readonly attemptCounts = new Map<string, number>();
  private readonly pending = new Map<string, { timer: ReturnType<typeof setTimeout>; schedule: ReconnectionSchedule }>();

  constructor(
    config: Partial<ReconnectionConfig> = {},
    private readonly random: () => number = Math.random,
  ) {
    this.config = Object.freeze({ ...DEFAULT_RECONNECTION_CONFIG, ...config });
  }

  calculateDelay(namespace: string): number {
    const attempts = this.attempts(namespace);
    let delay = Math.min(
      this.config.baseDelay * Math.pow(this.config.backoffFactor, attempts),
      this.config.maxDelay,
    );
    if (this.config.jitter) {
      delay = delay * (0.5 + this.random() * 0.5);
    }
    return delay;
  }

  shouldReconnect(namespace: string): boolean {
    return this.attempts(namespace) < this.config.maxAttempts;
  }

  recordAttempt(namespace: string): void {
    this.attemptCounts.set(namespace, this.attempts(namespace) + 1);
  }

  /** After a successful connect, or when the namespace is closed: forget attempts, drop the timer. */
  resetAttempts(namespace: string): void {
    this.attemptCounts.delete(namespace);
    this.cancel(namespace);
  }

  attempts(namespace: string): number {
    return this.attemptCounts.get(namespace) ?? 0;
  }

  /** The retry waiting to run for the namespace, if any. */
  scheduled(namespace: string): ReconnectionSchedule | undefined {
    return this.pending.get(namespace)?.schedule;
  }

  /**
   * Runs `reconnect` after the next delay and counts the attempt. Returns the new schedule, or
   * `undefined` when the attempts are used up or a retry is already pending (which is kept, not doubled:
   * every namespace on the connection hears the same failure).
   */
  schedule(namespace: string, reconnect: () => void): ReconnectionSchedule | undefined {
    if (!this.shouldReconnect(namespace) || this.pending.has(namespace)) return undefined;
    const delay = this.calculateDelay(namespace);
    this.recordAttempt(namespace);
    const schedule = { namespace, attempt: this.attempts(namespace), delay };
    const timer = setTimeout(() => {
      this.pending.delete(namespace);
      reconnect();
    }, delay);
    this.pending.set(namespace, { timer, schedule });
    return schedule;
  }

  cancel(namespace: string): void {
    const pending = this.pending.get(namespace);
    if (pending !== undefined) clearTimeout(pending.timer);
    this.pending.delete(namespace);
  }

  /** Cancels every pending retry and forgets every count. */
  clear(): void {
    for (const namespace of [...this.pending.keys()]) this.cancel(namespace);
    this.attemptCounts.clear();
  }
}
