import cliProgress from 'cli-progress';

/** A job event as the stream's `data:` carries it (fields the view reads; all optional). */
export interface StreamEvent {
  readonly type?: string;
  readonly event_seq?: number;
  readonly status?: string;
  readonly payload?: unknown;
}

/** Shows a followed job: a progress bar on a terminal, one plain line per event otherwise. */
export interface ProgressView {
  event(type: string, e: StreamEvent): void;
  note(message: string): void;
  stop(): void;
}

export function createProgressView(out: NodeJS.WritableStream & { readonly isTTY?: boolean }, jobId: string): ProgressView {
  return out.isTTY ? barView(out, jobId) : lineView(out);
}

function barView(out: NodeJS.WritableStream, jobId: string): ProgressView {
  const bar = new cliProgress.SingleBar(
    {
      stream: out,
      format: `${jobId} {bar} {percentage}% | {status} | partials: {partials} | {message}`,
      hideCursor: true,
      clearOnComplete: false,
      barsize: 30,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  let partials = 0;
  let value = 0;
  let active = true;
  return {
    event(type, e) {
      if (!active) return;
      const payload = e.payload;
      const progress = readProgress(payload);
      if (progress) value = Math.round(progress.fraction * 100);
      if (type === 'job.partial') partials++;
      if (type === 'job.completed') value = 100;
      const fields = { status: e.status ?? type, partials, message: progress?.message ?? (type === 'job.progress' ? '' : type) };
      if (!started) {
        bar.start(100, value, fields);
        started = true;
      } else bar.update(value, fields);
    },
    note(message) {
      if (started) bar.update(value, { message });
      else out.write(`${message}\n`);
    },
    stop() {
      if (started && active) bar.stop();
      active = false;
    },
  };
}

function lineView(out: NodeJS.WritableStream): ProgressView {
  return {
    event(type, e) {
      const seq = e.event_seq === undefined ? '' : `#${e.event_seq} `;
      out.write(`${seq}${type} ${e.status ?? ''}${describe(type, e.payload)}\n`);
    },
    note(message) {
      out.write(`${message}\n`);
    },
    stop() {},
  };
}

function describe(type: string, payload: unknown): string {
  if (!payload || typeof payload !== 'object') return '';
  const p = payload as Record<string, unknown>;
  if (type === 'job.progress') {
    const progress = readProgress(p);
    if (progress) return ` ${Math.round(progress.fraction * 100)}%${progress.message ? ` ${progress.message}` : ''}`;
  }
  if (type === 'job.partial') {
    const key = p.chunk_key ?? p.chunkKey;
    return typeof key === 'string' ? ` ${key}` : '';
  }
  const error = p.error && typeof p.error === 'object' ? (p.error as Record<string, unknown>) : p;
  if ((type === 'job.failed' || type === 'job.retrying') && typeof error.code === 'string') {
    return ` ${error.code}${typeof error.message === 'string' ? `: ${error.message}` : ''}`;
  }
  return '';
}

function readProgress(payload: unknown): { fraction: number; message: string | null } | null {
  if (!payload || typeof payload !== 'object') return null;
  const p = payload as Record<string, unknown>;
  const nested = p.progress && typeof p.progress === 'object' ? (p.progress as Record<string, unknown>) : p;
  const f = nested.fraction ?? (typeof p.progress === 'number' ? p.progress : undefined);
  if (typeof f !== 'number' || !Number.isFinite(f)) return null;
  return { fraction: Math.min(Math.max(f, 0), 1), message: typeof nested.message === 'string' ? nested.message : null };
}
