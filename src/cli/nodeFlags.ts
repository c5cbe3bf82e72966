/**
 * V8 flags every Upshift process runs with. `bin/upshift.js` relaunches Node with the ones the
 * process was not started with (docs/configuration.md, "Node flags"); the benchmark starts its
 * Upshift processes with them too.
 *
 * `--max-semi-space-size=8` (MB): a young generation of 16 MB. Node 24's default is four times
 * that, and a young-generation GC pause grows with the objects that outlive one interval; at
 * 500 jobs/s those pauses were 6–15 ms on Node 24 and 2–4 ms with 8 (docs/benchmarks.md,
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
