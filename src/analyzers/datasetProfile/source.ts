import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { PermanentError } from '../../core/analyzer.js';
import type { DatasetProfileInput } from './types.js';

export interface OpenedSource {
  readonly stream: Readable;
  readonly totalBytes: number;
}

const READ_CHUNK_BYTES = 256 * 1024;

/**
 * Opens the dataset for streaming. Problems with the input itself (both or neither of
 * data/file, relative path, missing or non-regular file, path outside `allowedRoots`) are
 * PermanentErrors: retrying cannot fix them.
 *
 * `allowedRoots` (absolute directories) confines `file` to the upload area; without it any
 * readable path is accepted, so the caller must not let tenants choose arbitrary paths.
 */
export async function openSource(input: DatasetProfileInput, allowedRoots?: readonly string[] | null): Promise<OpenedSource> {
  const hasData = typeof input.data === 'string';
  const hasFile = typeof input.file === 'string';
  if (hasData === hasFile) throw new PermanentError('dataset-profile: give exactly one of "data" or "file"', 'ANALYZER_INPUT_INVALID');
  if (typeof input.data === 'string') {
    return { stream: Readable.from(textChunks(input.data)), totalBytes: Buffer.byteLength(input.data) };
  }
  const file = input.file ?? '';
  if (!path.isAbsolute(file)) throw new PermanentError(`dataset-profile: "file" must be an absolute path`, 'ANALYZER_INPUT_INVALID');
  let resolved: string;
  try {
    resolved = await realpath(file);
    const st = await stat(resolved);
    if (!st.isFile()) throw new PermanentError(`dataset-profile: ${file} is not a regular file`);
    if (allowedRoots != null && !(await isUnderAny(resolved, allowedRoots))) {
      throw new PermanentError(`dataset-profile: ${file} is outside the allowed upload directories`);
    }
    return { stream: createReadStream(resolved, { highWaterMark: READ_CHUNK_BYTES }), totalBytes: st.size };
  } catch (e: unknown) {
    if (e instanceof PermanentError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    // A missing/unreadable upload will not appear by retrying; other I/O errors may be transient.
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' || code === 'ENOTDIR') {
      throw new PermanentError(`dataset-profile: cannot read ${file} (${code})`, 'ANALYZER_FAILED', { cause: e });
    }
    throw e;
  }
}

async function isUnderAny(file: string, roots: readonly string[]): Promise<boolean> {
  for (const root of roots) {
    const real = await realpath(root).catch(() => null);
    if (real === null) continue;
    const rel = path.relative(real, file);
    if (rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel)) return true;
  }
  return false;
}

/**
 * Inline data is handed to the parser in 64 Ki-character slices (never splitting a
 * surrogate pair) so progress and backpressure work as for files, without a second
 * full-size copy of the text.
 */
function* textChunks(text: string): Generator<Buffer> {
  const size = 64 * 1024;
  for (let i = 0; i < text.length; ) {
    let end = Math.min(text.length, i + size);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--;
    yield Buffer.from(text.slice(i, end), 'utf8');
    i = end;
  }
}
