/**
 * A background loop: runs `round` again at once while it reports more work, otherwise
 * sleeps until poked or until `pollMs` passed. A failing round is reported and followed by a
 * pause that doubles with every consecutive failure (up to MAX_FAILURE_PAUSE_MS), so a broken
 * store neither spins nor floods the log.
 */
const MAX_FAILURE_PAUSE_MS = 30_000;

export class WakeableLoop {
  private done: Promise<void> | null = null;
  private stopping = false;
  private pending = false;
  private wake: (() => void) | null = null;
  private failures = 0;

  constructor(
    private readonly round: () => Promise<boolean>,
    private readonly pollMs: number,
    private readonly onError: (e: unknown) => void,
    /** Cap of the pause after consecutive failures. */
    private readonly maxFailurePauseMs: number = MAX_FAILURE_PAUSE_MS,
  ) {}

  start(): void {
    this.done ??= this.run();
  }

  poke(): void {
    this.pending = true;
    // After a failure the pause stands: pokes (one per commit) must not turn it into a retry storm.
    if (this.failures === 0) this.wake?.();
  }

  /** Finishes the current round and ends the loop. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.pending = true;
    this.wake?.();
    await this.done;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      this.pending = false;
      let more = false;
      let failed = false;
      try {
        more = await this.round();
        this.failures = 0;
      } catch (e) {
        failed = true;
        if (this.failures++ === 0 || this.failures % 10 === 0) this.onError(e);
      }
      if (this.stopping) break;
      if (!failed && (more || this.pending)) continue;
      await new Promise<void>((resolve) => {
        const pause = failed ? Math.min(this.maxFailurePauseMs, this.pollMs * 2 ** Math.min(this.failures - 1, 20)) : this.pollMs;
        const t = setTimeout(resolve, pause);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
        if (this.pending && !failed) this.wake();
      });
      this.wake = null;
    }
  }
}
