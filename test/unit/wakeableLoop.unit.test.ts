import { describe, expect, it } from 'vitest';
import { WakeableLoop } from '../../src/app/wakeableLoop.js';

describe('WakeableLoop', () => {
  it('runs again at once while there is more work, then sleeps until poked', async () => {
    let rounds = 0;
    const loop = new WakeableLoop(async () => ++rounds < 3, 60_000, () => {});
    loop.start();
    await new Promise((r) => setTimeout(r, 20));
    expect(rounds).toBe(3);
    loop.poke();
    await new Promise((r) => setTimeout(r, 20));
    expect(rounds).toBe(4);
    await loop.stop();
  });

  it('backs off after failures, ignores pokes meanwhile, reports the first failure, and still stops at once', async () => {
    let rounds = 0;
    const errors: unknown[] = [];
    const loop = new WakeableLoop(
      async () => {
        rounds++;
        throw new Error('store down');
      },
      20,
      (e) => errors.push(e),
    );
    loop.start();
    await new Promise((r) => setTimeout(r, 10));
    for (let i = 0; i < 50; i++) loop.poke();
    await new Promise((r) => setTimeout(r, 200));
    // 20, 40, 80 ms pauses: a handful of rounds, not one per poke.
    expect(rounds).toBeGreaterThanOrEqual(3);
    expect(rounds).toBeLessThanOrEqual(5);
    expect(errors).toHaveLength(1);
    const t = Date.now();
    await loop.stop();
    expect(Date.now() - t).toBeLessThan(100);
  });
});
