import { PermanentError } from '../../core/analyzer.js';
import { profileStream, type ProfileHooks } from './profileStream.js';
import { openSource } from './source.js';
import type { DatasetProfile, DatasetProfileInput } from './types.js';

export interface ProfileTaskOptions {
  readonly signal?: AbortSignal;
  readonly allowedRoots?: readonly string[] | null;
}

/** Opens the input and profiles it: the whole job, shared by the worker thread and in-process mode. */
export async function runProfileTask(
  input: DatasetProfileInput,
  hooks: ProfileHooks,
  options: ProfileTaskOptions = {},
): Promise<DatasetProfile> {
  if (input.format !== 'csv' && input.format !== 'ndjson') {
    throw new PermanentError(`dataset-profile: unknown format ${JSON.stringify(input.format)}`, 'ANALYZER_INPUT_INVALID');
  }
  const chunkRows = input.chunk_rows ?? undefined;
  if (chunkRows !== undefined && !(Number.isInteger(chunkRows) && chunkRows >= 1)) {
    throw new PermanentError('dataset-profile: chunk_rows must be an integer ≥ 1', 'ANALYZER_INPUT_INVALID');
  }
  const { stream, totalBytes } = await openSource(input, options.allowedRoots);
  return profileStream(
    stream,
    {
      format: input.format,
      delimiter: input.delimiter,
      chunkRows,
      totalBytes,
      signal: options.signal,
    },
    hooks,
  );
}
