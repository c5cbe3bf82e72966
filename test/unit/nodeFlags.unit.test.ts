import { describe, expect, it } from 'vitest';
import { missingNodeFlags, UPSHIFT_NODE_FLAGS } from '../../src/cli/nodeFlags.js';

describe('missingNodeFlags', () => {
  it('adds every Upshift flag to a plain start', () => {
    expect(missingNodeFlags([], undefined)).toEqual([...UPSHIFT_NODE_FLAGS]);
    expect(missingNodeFlags(['--enable-source-maps'], '--max-old-space-size=512')).toEqual(['--max-semi-space-size=8']);
  });

  it("keeps the operator's own value, however it is spelled and wherever it is given", () => {
    expect(missingNodeFlags(['--max-semi-space-size=32'], undefined)).toEqual([]);
    expect(missingNodeFlags(['--max_semi_space_size=2'], undefined)).toEqual([]);
    expect(missingNodeFlags([], '--inspect  --max-semi-space-size=4')).toEqual([]);
    expect(missingNodeFlags([], ' --max_semi_space_size=4 ')).toEqual([]);
  });

  it('does not mistake a similar flag for it', () => {
    expect(missingNodeFlags(['--min-semi-space-size=8', '--max-semi-space-size-x'], '--semi-space-growth-factor=2')).toEqual(['--max-semi-space-size=8']);
  });
});
