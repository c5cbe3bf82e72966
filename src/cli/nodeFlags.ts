/**
 * V8 flags every long-running Upshift process (serve, api, worker) runs with. `bin/upshift.js`
 * relaunches Node with the ones the process was not started with (docs/configuration.md, "Node
 * flags"); the benchmark starts its Upshift processes with them too.
 *
 * `--max-semi-space-size=8` (MB): a young generation of 16 MB. Node 24's default is four times
 * that, and a young-generation GC pause grows with the objects that outlive one interval; at
 * 500 jobs/s those pauses were 6–15 ms on Node 24 and 2–6 ms with 8 (docs/benchmarks.md,
 * session 9), with no change in throughput.
 */
export const UPSHIFT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8'];

/** `--max_semi_space_size=4` and `--max-semi-space-size 4` name the same flag as `--max-semi-space-size=8`. */
function flagName(arg: string): string {
  return (arg.split('=')[0] as string).replace(/_/g, '-');
}

/**
 * The flags of UPSHIFT_NODE_FLAGS that neither the command line (`execArgv`) nor NODE_OPTIONS
 * sets: an operator's own value of a flag always wins.
 */
export function missingNodeFlags(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const given = new Set([...execArgv, ...(nodeOptions ?? '').split(/\s+/)].filter((a) => a.startsWith('--')).map(flagName));
  return UPSHIFT_NODE_FLAGS.filter((f) => !given.has(flagName(f)));
}

/** The commands that keep running (and whose pauses matter); the others start as they are. */
const LONG_RUNNING = new Set(['serve', 'api', 'worker']);

/** Set in the environment of the relaunched process (never relaunch twice). */
export const RELAUNCHED_ENV = 'UPSHIFT_NODE_RELAUNCHED';

/**
 * The flags `bin/upshift.js` relaunches `upshift <command>` with: UPSHIFT_NODE_FLAGS missing from
 * the process, for the long-running commands only, and never in a relaunched process. `known`:
 * whether this Node accepts a flag (process.allowedNodeEnvironmentFlags): a Node that dropped one
 * starts as it is instead of failing on an unknown option.
 */
export function relaunchFlags(command: string | undefined, execArgv: readonly string[], env: Readonly<Record<string, string | undefined>>, known: (flag: string) => boolean): string[] {
  if (env[RELAUNCHED_ENV] === '1' || command === undefined || !LONG_RUNNING.has(command)) return [];
  return missingNodeFlags(execArgv, env.NODE_OPTIONS).filter((f) => known(flagName(f)));
}

/**
 * Whether this Node can relaunch in place: `process.execve` exists from Node 23.11 / 22.15, but
 * throws ERR_FEATURE_UNAVAILABLE_ON_PLATFORM on Windows and IBM i.
 */
export function canExecve(execve: unknown, platform: NodeJS.Platform | 'os400'): boolean {
  return typeof execve === 'function' && platform !== 'win32' && platform !== 'os400';
}
