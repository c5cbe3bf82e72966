import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { UpshiftError } from '../core/errors.js';

/**
 * Raw dataset uploads. The content-type parser hands the request stream through untouched
 * (wrapped in an UploadBody); the route streams it to a file under `<dataDir>/uploads/`, never
 * buffering it, and enforces the upload limit while writing.
 */

/** The parsed "body" of an upload request: the still-unread request stream. */
export class UploadBody {
  started = false;
  finished = false;
  constructor(
    readonly stream: Readable,
    readonly mediaType: string,
  ) {}
}

export interface ReceivedUpload {
  readonly path: string;
  readonly bytes: number;
  readonly sha256: string;
}

export interface ReceiveOptions {
  readonly dir: string;
  readonly limitBytes: number;
  /** Final file name from the content hash (lets idempotent replays land on the same path). */
  readonly fileName: (sha256: string) => string;
}

/** A name nobody can guess or collide with. */
export const randomUploadName = (ext: string): string => `upl_${randomBytes(16).toString('hex')}.${ext}`;

/**
 * Streams the upload to `dir`. Throws BODY_TOO_LARGE (partial file deleted) past the limit,
 * BODY_MALFORMED when the client aborts mid-upload. On overflow the rest of the request is
 * discarded, not read into memory; the caller should answer with `Connection: close`.
 */
export async function receiveUpload(upload: UploadBody, opts: ReceiveOptions): Promise<ReceivedUpload> {
  const source = upload.stream;
  upload.started = true;
  // An error on a stream without listeners would crash the process; a client abort is normal.
  source.on('error', () => {});
  await mkdir(opts.dir, { recursive: true });
  const tmp = join(opts.dir, `.part_${randomBytes(12).toString('hex')}`);
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const file = createWriteStream(tmp, { flags: 'wx' });
      let settled = false;
      let ended = false;
      const cleanup = () => {
        source.off('data', onData);
        source.off('end', onEnd);
        source.off('error', onError);
        source.off('close', onClose);
      };
      const fail = (e: unknown) => {
        if (settled) return;
        settled = true;
        cleanup();
        file.destroy();
        // Keep the socket readable but discard whatever the client still sends.
        source.resume();
        reject(e);
      };
      const onData = (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > opts.limitBytes) {
          fail(new UpshiftError('BODY_TOO_LARGE', `upload exceeds the limit of ${opts.limitBytes} bytes`, { details: { limit_bytes: opts.limitBytes } }));
          return;
        }
        hash.update(chunk);
        if (!file.write(chunk)) {
          source.pause();
          file.once('drain', () => {
            if (!settled) source.resume();
          });
        }
      };
      const onEnd = () => {
        ended = true;
        file.end();
      };
      const onError = () => fail(new UpshiftError('BODY_MALFORMED', 'the upload was interrupted'));
      const onClose = () => {
        if (!ended) onError();
      };
      file.on('error', (e) => fail(e));
      file.on('close', () => {
        if (ended && !settled) {
          settled = true;
          cleanup();
          resolve();
        }
      });
      source.on('data', onData);
      source.on('end', onEnd);
      source.on('error', onError);
      source.on('close', onClose);
    });
    upload.finished = true;
    const sha256 = hash.digest('hex');
    const path = join(opts.dir, opts.fileName(sha256));
    await rename(tmp, path);
    return { path, bytes, sha256 };
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
