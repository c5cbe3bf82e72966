import { describe, expect, it } from 'vitest';
import { dispatchJobId, interleaveByOrg } from '../../src/adapters/dispatch/bullmq/bullmqOutboxRelay.js';

describe('BullMQ dispatch ids', () => {
  it('are the job id and the attempt, without the colon BullMQ forbids', () => {
    expect(dispatchJobId({ jobId: 'job_06h2wk30y5h26r68pncme8nk2w', attempt: 1 })).toBe('job_06h2wk30y5h26r68pncme8nk2w.1');
    expect(dispatchJobId({ jobId: 'job_a', attempt: 2 })).not.toBe(dispatchJobId({ jobId: 'job_a', attempt: 1 }));
    expect(dispatchJobId({ jobId: 'job_a', attempt: 12 })).not.toContain(':');
  });
});

describe('interleaveByOrg', () => {
  it('takes orgs round robin and keeps each org in its own order', () => {
    const rows = [
      { orgId: 'big', n: 1 },
      { orgId: 'big', n: 2 },
      { orgId: 'big', n: 3 },
      { orgId: 'big', n: 4 },
      { orgId: 'small', n: 1 },
      { orgId: 'other', n: 1 },
      { orgId: 'other', n: 2 },
    ];
    expect(interleaveByOrg(rows).map((r) => `${r.orgId}${r.n}`)).toEqual(['big1', 'small1', 'other1', 'big2', 'other2', 'big3', 'big4']);
  });

  it('returns one org (or nothing) unchanged', () => {
    const one = [{ orgId: 'a', n: 2 }, { orgId: 'a', n: 1 }];
    expect(interleaveByOrg(one)).toEqual(one);
    expect(interleaveByOrg([])).toEqual([]);
  });
});
