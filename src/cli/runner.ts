/**
 * Wraps a command action so its resolved exit code reaches runCli (commander discards
 * action return values). Thrown errors propagate to runCli, which reports them.
 */
export type Runner = <A extends unknown[]>(action: (...args: A) => Promise<number>) => (...args: A) => Promise<void>;

export function createRunner(): { run: Runner; exitCode: () => number } {
  let code = 0;
  const run: Runner =
    (action) =>
    async (...args) => {
      code = await action(...args);
    };
  return { run, exitCode: () => code };
}
