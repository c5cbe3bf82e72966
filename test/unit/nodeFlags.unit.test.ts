import { describe, expect, it } from 'vitest';
import { canExecve, missingNodeFlags, relaunchFlags, RELAUNCHED_ENV, UPSHIFT_NODE_FLAGS } from '../../src/cli/nodeFlags.js';

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

describe('relaunchFlags', () => {
  const known = (): boolean => true;

  it('relaunches the long-running commands only', () => {
    for (const cmd of ['serve', 'api', 'worker']) expect(relaunchFlags(cmd, [], {}, known)).toEqual([...UPSHIFT_NODE_FLAGS]);
    for (const cmd of ['jobs', 'keys', 'migrate', 'retention', 'copy-store', '--help', undefined]) expect(relaunchFlags(cmd, [], {}, known)).toEqual([]);
  });

  it('never relaunches a relaunched process, nor over the operator\'s own value', () => {
    expect(relaunchFlags('serve', [], { [RELAUNCHED_ENV]: '1' }, known)).toEqual([]);
    expect(relaunchFlags('serve', ['--max-semi-space-size=32'], {}, known)).toEqual([]);
    expect(relaunchFlags('worker', [], { NODE_OPTIONS: '--max-semi-space-size=32' }, known)).toEqual([]);
  });

  it('leaves out a flag this Node does not accept (it would fail to start)', () => {
    expect(relaunchFlags('serve', [], {}, (f) => f !== '--max-semi-space-size')).toEqual([]);
  });
});

describe('canExecve', () => {
  const execve = (): never => {
    throw new Error('not called');
  };

  it('relaunches in place only where process.execve exists and works', () => {
    expect(canExecve(execve, 'linux')).toBe(true);
    expect(canExecve(execve, 'darwin')).toBe(true);
    // Node ≥ 22.15 has the function on Windows and IBM i too, but it throws there.
    expect(canExecve(execve, 'win32')).toBe(false);
    expect(canExecve(execve, 'os400')).toBe(false);
    // Node 20.
    expect(canExecve(undefined, 'linux')).toBe(false);
  });
});
