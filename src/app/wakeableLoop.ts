/**
 * A background loop: runs `round` again at once while it reports more work, otherwise
 * sleeps until poked or until `pollMs` passed. A failing round is reported and followed by a
 * poll-interval pause, so a broken store does not spin.
 */
export class WakeableLoop {
  private done: Promise<void> | null = null;
  private stopping = false;
  private pending = false;
  private wake: (() => void) | null = null;

  constructor(
    private readonly round: () => Promise<boolean>,
    private readonly pollMs: number,
    private readonly onError: (e: unknown) => void,
  ) {}

  start(): void {
    this.done ??= this.run();
  }

  poke(): void {
    this.pending = true;
    this.wake?.();
  }

  /** Finishes the current round and ends the loop. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.poke();
    await this.done;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      this.pending = false;
      let more = false;
      let failed = false;
      try {
        more = await this.round();
      } catch (e) {
        failed = true;
        this.onError(e);
      }
      if (this.stopping) break;
      if (!failed && (more || this.pending)) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.pollMs);
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
