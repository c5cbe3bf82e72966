import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { canExecve, UPSHIFT_NODE_FLAGS } from '../../src/cli/nodeFlags.js';
import { sqliteDriverPackage } from '../../src/adapters/store/sqlite/sqliteDriver.js';
import { freePort, repoRoot } from '../helpers/proc.js';

/**
 * bin/upshift.js relaunches Node with Upshift's flags (src/cli/nodeFlags.ts) through
 * process.execve where Node has it (≥ 22.15 / 23.11: the Node 24 leg of CI), keeping the pid; on older
 * Node it runs as started. An operator's own value wins. Read from the `listening` log line of a
 * real `upshift serve`.
 */
const dir = mkdtempSync(join(tmpdir(), 'upshift-node-flags-'));
// The same decision bin/upshift.js makes (Node 24 on Linux: yes; Node 20: no).
const canRelaunch = canExecve((process as { execve?: unknown }).execve, process.platform);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function listeningLine(nodeArgs: string[], env: Record<string, string> = {}): Promise<{ line: Record<string, unknown>; cmdline: string[] }> {
  const port = await freePort();
  const name = `s${port}`;
  const child = spawn(process.execPath, [...nodeArgs, join(repoRoot, 'bin', 'upshift.js'), 'serve', '--port', String(port)], {
    env: { ...process.env, UPSHIFT_LOG_LEVEL: 'info', UPSHIFT_DATA_DIR: join(dir, name), UPSHIFT_DATABASE_URL: `sqlite:${join(dir, `${name}.db`)}`, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  try {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const line = out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.msg === 'listening');
      // The command line of the pid we spawned (Linux): after a relaunch it is the new one.
      if (line) return { line, cmdline: readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0').filter(Boolean) };
      if (child.exitCode !== null) throw new Error(`upshift serve exited (${child.exitCode}):\n${out}`);
      if (Date.now() > deadline) throw new Error(`no listening line within 20 s:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
}

describe('Node flags of upshift processes', () => {
  it(`runs with ${UPSHIFT_NODE_FLAGS.join(' ')} ${canRelaunch ? 'after relaunching in the same process' : '(not on this Node: no process.execve)'}`, async () => {
    const { line, cmdline } = await listeningLine([]);
    const flags = canRelaunch ? [...UPSHIFT_NODE_FLAGS] : [];
    expect(String(line.node_flags).split(' ').filter(Boolean)).toEqual(flags);
    // The pid we spawned runs them: the relaunch replaced the process, so a supervisor's or a
    // test's kill still reaches Upshift.
    expect(cmdline.slice(1, 1 + flags.length)).toEqual(flags);
    expect(cmdline.slice(1 + flags.length, 3 + flags.length)).toEqual([join(repoRoot, 'bin', 'upshift.js'), 'serve']);
  });

  it("keeps the operator's own value from the command line or NODE_OPTIONS", async () => {
    expect((await listeningLine(['--max-semi-space-size=2'])).line.node_flags).toBe('--max-semi-space-size=2');
    // NODE_OPTIONS flags are not in execArgv: nothing is added on top of them.
    expect((await listeningLine([], { NODE_OPTIONS: '--max-semi-space-size=4' })).line.node_flags).toBe('');
  });

  it('npm start and the container image start Node with the same flags', () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toBe(`node ${UPSHIFT_NODE_FLAGS.join(' ')} bin/upshift.js serve`);
    const entry = /^ENTRYPOINT (\[.*\])$/m.exec(readFileSync(join(repoRoot, 'deploy', 'Dockerfile'), 'utf8'))?.[1];
    expect(JSON.parse(entry ?? 'null')).toEqual(['node', ...UPSHIFT_NODE_FLAGS, 'bin/upshift.js']);
  });

  it('the container image runs a Node whose SQLite driver ships prebuilt (no install scripts, no compiler)', () => {
    const dockerfile = readFileSync(join(repoRoot, 'deploy', 'Dockerfile'), 'utf8');
    const bases = [...dockerfile.matchAll(/^FROM node:(\d+)-/gm)].map((m) => Number(m[1]));
    expect(bases).toHaveLength(2);
    for (const major of bases) {
      // Node >= 22 loads better-sqlite3 13, whose package carries its binaries; and the Node
      // the image builds with is the Node it runs.
      expect(sqliteDriverPackage(`${major}.0.0`)).toBe('better-sqlite3-v13');
      expect(major).toBe(bases[0]);
    }
    expect(dockerfile).toMatch(/^RUN npm ci --ignore-scripts$/m);
    expect(dockerfile).not.toMatch(/g\+\+|node-gyp|python3/);
  });
});
