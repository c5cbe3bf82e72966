import { runChild, summarise, writeReport, type Measurement } from './harness.js';

/**
 * `npm run bench -- <scenario> [--quick] [--reps N]`. Every measurement runs in a fresh
 * process; systems are interleaved per repetition; the report gives medians with min–max.
 */
const scenarios: Record<string, (reps: number, quick: boolean) => Promise<Measurement[]>> = {
  async lifecycle(reps, quick) {
    const n = quick ? '5000' : '20000';
    const seconds = quick ? '3' : '10';
    const out: Measurement[] = [];
    for (let i = 0; i < reps; i++) {
      out.push(...(await runChild('scenarios/upshiftLifecycle.js', ['throughput', n, '50'])));
      out.push(...(await runChild('scenarios/upshiftLifecycle.js', ['latency', '500', seconds])));
    }
    return out;
  },
  // Retention under API load (bench/scenarios/retention.ts): >= 1,000,000 eligible events.
  async retention(reps, quick) {
    const out: Measurement[] = [];
    for (let i = 0; i < reps; i++) out.push(...(await runChild('scenarios/retention.js', quick ? ['200000', '500', '4'] : ['1000000', '500', '10'], {}, 900_000)));
    return out;
  },
};

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const repsIdx = args.indexOf('--reps');
  const reps = repsIdx >= 0 ? Number(args[repsIdx + 1]) : quick ? 1 : 3;
  const names = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--reps');
  const wanted = names.length === 0 || names.includes('all') ? Object.keys(scenarios) : names;
  for (const name of wanted) {
    const scenario = scenarios[name];
    if (!scenario) {
      console.error(`unknown scenario "${name}"; known: ${Object.keys(scenarios).join(', ')}, all`);
      process.exit(2);
    }
    const summaries = summarise(await scenario(reps, quick));
    console.log(writeReport(name, summaries, `npm run bench -- ${args.join(' ')}`));
  }
}

await main();
