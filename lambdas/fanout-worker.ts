import type { Deps } from './core/deps.ts';
import { parseJob, runJob } from './core/fanout.ts';
import type { SqsBatchResponse, SqsEvent } from './edge/sqs-types.ts';
import { lambdaEntry } from './runtime.ts';

/**
 * A fan-out worker: each SQS record is one job (a key range of a big room, lambdas/core/fanout.ts),
 * run in parallel with the batch's others. A record whose job failed before posting anything is
 * named in `batchItemFailures` and comes back; after 5 receives it goes to the dead-letter queue.
 */
export function makeFanoutWorkerHandler(deps: Deps) {
  return async (event: SqsEvent): Promise<SqsBatchResponse> => {
    const failures = await Promise.all(
      event.Records.map(async (record) => {
        try {
          await runJob(deps, parseJob(record.body));
          return [];
        } catch (err) {
          deps.audit('error', 'error', { reason: 'fanout_job_failed', errorName: (err as Error).name });
          return [{ itemIdentifier: record.messageId }];
        }
      }),
    );
    return { batchItemFailures: failures.flat() };
  };
}

export const handler = lambdaEntry(makeFanoutWorkerHandler);
