import type { Analyzer } from '../core/analyzer.js';
import type { Json } from '../core/job.js';
import { noopAnalyzer, sleepAnalyzer } from './basic.js';
import { datasetProfileAnalyzer } from './datasetProfile/datasetProfileAnalyzer.js';

export { noopAnalyzer, sleepAnalyzer, type SleepInput, type SleepOutput } from './basic.js';
export {
  closeDatasetProfilePool,
  createDatasetProfileAnalyzer,
  datasetProfileAnalyzer,
  type DatasetProfileAnalyzerOptions,
} from './datasetProfile/datasetProfileAnalyzer.js';
export { profileStream, type ProfileHooks, type ProfileOptions } from './datasetProfile/profileStream.js';
export type { ColumnProfile, ColumnType, DatasetProfile, DatasetProfileInput } from './datasetProfile/types.js';

/** The analyzers every Upshift server registers. */
export const builtinAnalyzers: ReadonlyArray<Analyzer<never, Json>> = [noopAnalyzer, sleepAnalyzer, datasetProfileAnalyzer];
