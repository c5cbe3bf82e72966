import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { Command } from 'commander';
import { ApiClient } from './client/apiClient.js';
import { followJob, followOrgEvents } from './client/followJob.js';
import { createProgressView } from './client/progressView.js';
import type { Env } from '../config/config.js';
import { CliError, EXIT, intFlag, writeJson, type CliIo } from './io.js';
import type { Runner } from './runner.js';

const DEFAULT_URL = 'http://127.0.0.1:8080';
const UPLOAD_TYPES: Readonly<Record<string, string>> = { csv: 'text/csv', ndjson: 'application/x-ndjson' };

interface TargetFlags {
  readonly url?: string;
  readonly org?: string;
  readonly apiKey?: string;
  readonly token?: string;
}

/**
 * Client commands: talk HTTP to a running server. Target from --url/--org/--api-key/--token,
 * else UPSHIFT_URL/UPSHIFT_ORG/UPSHIFT_API_KEY/UPSHIFT_TOKEN. Results go to stdout as JSON;
 * progress and notes to stderr, so `upshift jobs submit … --wait > job.json` stays clean.
 */
export function jobsCommand(io: CliIo, run: Runner): Command {
  const jobs = new Command('jobs').description('submit, inspect, cancel and follow jobs on a running server');
  const client = (f: TargetFlags): ApiClient =>
    new ApiClient({ url: f.url ?? io.env.UPSHIFT_URL ?? DEFAULT_URL, org: f.org ?? io.env.UPSHIFT_ORG, bearer: bearerOf(f, io.env) });
  const clientCmd = (name: string, description: string): Command =>
    new Command(name)
      .description(description)
      .option('--url <url>', `server URL (env UPSHIFT_URL, default ${DEFAULT_URL})`)
      .option('--org <org>', 'tenant, sent as X-Org-Id (env UPSHIFT_ORG)')
      .option('--api-key <key>', 'API key, sent as a Bearer token (env UPSHIFT_API_KEY)')
      .option('--token <jwt>', 'JWT of your identity provider, sent as a Bearer token (env UPSHIFT_TOKEN; server auth mode jwt)');

  jobs.addCommand(
    clientCmd('submit', 'submit a job; prints the job reference (or, with --wait, the final job)')
      .argument('<analyzer>', 'analyzer name, e.g. dataset-profile')
      .option('--input <json>', 'analyzer input as JSON')
      .option('--input-file <file>', 'read the analyzer input (JSON) from a file')
      .option('--file <file>', 'upload a data file as a streamed body (dataset analyzers)')
      .option('--format <format>', 'format of --file: csv or ndjson', 'csv')
      .option('--idempotency-key <key>', 'same key + same request → the same job')
      .option('--wait', 'follow the job until it ends; exit 0 completed, 1 failed, 3 canceled')
      .action(
        run(async (analyzer: string, opts: TargetFlags & SubmitFlags) => {
          if (opts.file !== undefined && (opts.input !== undefined || opts.inputFile !== undefined)) {
            throw new CliError('--file uploads the data as the body; it cannot be combined with --input/--input-file', EXIT.usage);
          }
          const api = client(opts);
          const headers = opts.idempotencyKey ? { 'idempotency-key': opts.idempotencyKey } : undefined;
          const ref = opts.file
            ? await api.json('POST', `analyze/jobs?analyzer=${encodeURIComponent(analyzer)}&format=${encodeURIComponent(opts.format)}`, {
                body: await uploadBody(opts.file),
                headers: { 'content-type': uploadType(opts.format), ...headers },
              })
            : await api.json('POST', 'analyze/jobs', { json: { analyzer, input: await readInput(opts) }, ...(headers && { headers }) });
          if (!opts.wait) {
            writeJson(io.stdout, ref);
            return EXIT.ok;
          }
          const jobId = String(ref.job_id);
          io.stderr.write(`submitted ${jobId}\n`);
          return waitFor(api, jobId, io);
        }),
      ),
  );

  jobs.addCommand(
    clientCmd('get', 'print a job').argument('<job_id>').action(
      run(async (jobId: string, opts: TargetFlags) => {
        writeJson(io.stdout, await client(opts).json('GET', `analyze/jobs/${encodeURIComponent(jobId)}`));
        return EXIT.ok;
      }),
    ),
  );

  jobs.addCommand(
    clientCmd('cancel', 'cancel a job (idempotent); prints the job').argument('<job_id>').action(
      run(async (jobId: string, opts: TargetFlags) => {
        writeJson(io.stdout, await client(opts).json('POST', `analyze/jobs/${encodeURIComponent(jobId)}/cancel`));
        return EXIT.ok;
      }),
    ),
  );

  jobs.addCommand(
    clientCmd('wait', 'follow a job until it ends, then print it; exit 0 completed, 1 failed, 3 canceled')
      .argument('<job_id>')
      .action(run(async (jobId: string, opts: TargetFlags) => waitFor(client(opts), jobId, io))),
  );
  jobs.addCommand(
    clientCmd('tail', "follow every job event of the org as it commits; prints one JSON line per event (ndjson)")
      .option('--after <position>', 'start after this event position (replays the stored events after it); default: from now')
      .option('--count <n>', 'exit 0 after this many events')
      .action(
        run(async (opts: TargetFlags & { after?: string; count?: string }) => {
          const after = opts.after === undefined ? null : intFlag('--after', opts.after, 0, Number.MAX_SAFE_INTEGER);
          const count = opts.count === undefined ? Infinity : intFlag('--count', opts.count, 1, Number.MAX_SAFE_INTEGER);
          let seen = 0;
          await followOrgEvents(
            client(opts),
            after,
            (event) => {
              io.stdout.write(`${JSON.stringify(event)}\n`);
              return ++seen >= count;
            },
            (note) => io.stderr.write(`${note}\n`),
          );
          return EXIT.ok;
        }),
      ),
  );
  return jobs;
}

interface SubmitFlags {
  readonly input?: string;
  readonly inputFile?: string;
  readonly file?: string;
  readonly format: string;
  readonly idempotencyKey?: string;
  readonly wait?: boolean;
}

/** Follows the stream to the end, prints the final job, maps its status to the exit code. */
async function waitFor(api: ApiClient, jobId: string, io: CliIo): Promise<number> {
  const view = createProgressView(io.stderr, jobId);
  try {
    await followJob(api, jobId, view);
  } finally {
    view.stop();
  }
  const job = await api.json('GET', `analyze/jobs/${encodeURIComponent(jobId)}`);
  writeJson(io.stdout, job);
  switch (job.status) {
    case 'completed':
      return EXIT.ok;
    case 'canceled':
      return EXIT.canceled;
    default:
      return EXIT.failure;
  }
}

async function readInput(opts: SubmitFlags): Promise<unknown> {
  if (opts.input !== undefined && opts.inputFile !== undefined) throw new CliError('give --input or --input-file, not both', EXIT.usage);
  let text: string;
  let from: string;
  if (opts.inputFile !== undefined) {
    from = `--input-file ${opts.inputFile}`;
    try {
      text = await readFile(opts.inputFile, 'utf8');
    } catch (e) {
      throw new CliError(`${from}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, EXIT.usage);
    }
  } else if (opts.input !== undefined) {
    from = '--input';
    text = opts.input;
  } else {
    return {};
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new CliError(`${from} is not valid JSON: ${(e as Error).message}`, EXIT.usage);
  }
}

/**
 * The Bearer credential: an API key or a JWT, both sent as `Authorization: Bearer …`. Flags win
 * over the environment; two credentials from the same place are ambiguous and refused.
 */
function bearerOf(f: TargetFlags, env: Env): string | undefined {
  if (f.apiKey !== undefined && f.token !== undefined) throw new CliError('--api-key and --token both set a Bearer credential; pass one', EXIT.usage);
  const flag = f.token ?? f.apiKey;
  if (flag !== undefined) return flag;
  const fromEnv = (k: 'UPSHIFT_TOKEN' | 'UPSHIFT_API_KEY'): string | undefined => (env[k]?.trim() ? env[k] : undefined);
  if (fromEnv('UPSHIFT_TOKEN') !== undefined && fromEnv('UPSHIFT_API_KEY') !== undefined) {
    throw new CliError('UPSHIFT_TOKEN and UPSHIFT_API_KEY are both set; unset one (or pass --token / --api-key)', EXIT.usage);
  }
  return fromEnv('UPSHIFT_TOKEN') ?? fromEnv('UPSHIFT_API_KEY');
}

function uploadType(format: string): string {
  const type = UPLOAD_TYPES[format];
  if (!type) throw new CliError(`--format must be one of ${Object.keys(UPLOAD_TYPES).join(', ')}`, EXIT.usage);
  return type;
}

/** The file as a web stream: uploads of any size go out without being read into memory. */
async function uploadBody(file: string): Promise<ReadableStream<Uint8Array>> {
  try {
    if (!(await stat(file)).isFile()) throw new CliError(`--file ${file}: not a regular file`, EXIT.usage);
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(`--file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, EXIT.usage);
  }
  return Readable.toWeb(createReadStream(file)) as ReadableStream<Uint8Array>;
}
