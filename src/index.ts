/**
 * Upshift's public library API: embed the runtime in your own process, register analyzers,
 * submit and follow jobs without HTTP.
 */
export { createUpshift, createStore, createBullmqDispatch, type Upshift, type UpshiftOptions, type BullmqDispatch, type BullmqDispatchOptions } from './main.js';
export type { Dispatcher, DispatchSink, DispatchRelay } from './ports/dispatcher.js';
export { loadConfig, type Config } from './config/config.js';
export { defineAnalyzer, PermanentError, RetryAfterError, type Analyzer, type AnalyzerContext, type JsonSchema } from './core/analyzer.js';
export { UpshiftError, ERROR_CATALOGUE, type ErrorCode } from './core/errors.js';
export { parseOrgId, parseJobId, parseResultId, type OrgId, type JobId, type ResultId } from './core/ids.js';
export type { Job, JobResult, Json, JobError, JobProgress } from './core/job.js';
export type { JobEvent, JobEventType } from './core/events.js';
export type { JobStatus } from './core/jobState.js';
export type { JobService, SubmitRequest } from './app/jobService.js';
export type { JobStore } from './ports/jobStore.js';
export { ManualClock, systemClock, type Clock } from './ports/clock.js';
