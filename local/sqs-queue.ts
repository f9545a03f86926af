import { createHash, randomUUID } from 'node:crypto';
import type { MessageQueue, QueueEntry } from '../lambdas/core/queue.ts';
import type { SqsBatchResponse, SqsEvent, SqsRecord } from '../lambdas/edge/sqs-types.ts';

export interface LocalQueueOptions {
  /** The worker, invoked with SQS-shaped events as Lambda's event source mapping invokes it. */
  readonly handler: (event: SqsEvent) => Promise<SqsBatchResponse | undefined>;
  /** Records per invocation at most (the mapping's `batchSize`; default 10). */
  readonly batchSize?: number;
  /** Invocations at once at most (the mapping's maximum concurrency; default 4 on one machine). */
  readonly maxConcurrency?: number;
  /** How long a received record stays invisible before it comes back (default 2000 ms). */
  readonly visibilityTimeoutMs?: number;
  /** Receives after which a record goes to the dead-letter queue instead (the redrive policy; default 5). */
  readonly maxReceiveCount?: number;
  /** Called for each record moved to the dead-letter queue. */
  readonly onDeadLetter?: (record: SqsRecord) => void;
  /** Tests only: hands this record to the worker a second time (SQS standard queues deliver at least once). */
  readonly duplicate?: (body: string) => boolean;
  readonly name?: string;
}

interface Held {
  readonly messageId: string;
  readonly body: string;
  readonly sentAt: number;
  availableAt: number;
  receives: number;
  firstReceiveAt?: number;
}

/** The queue as `local/` runs it, for tests and the bench to watch. */
export interface LocalQueue extends MessageQueue {
  /** Records waiting or in flight. */
  readonly size: number;
  /** Records moved to the dead-letter queue. */
  readonly deadLetters: readonly SqsRecord[];
  /** Invocations of the worker so far. */
  readonly invocations: number;
  /** Resolves once nothing is waiting, delayed or in flight. */
  drained(): Promise<void>;
  /** Tests only: holds every record back (a worker pool not yet scaled up) until `resume()`. */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

/**
 * An SQS standard queue with a Lambda event source mapping, in process: `send` takes entries
 * (with `DelaySeconds`), a poller hands the worker batches of up to `batchSize` records in
 * Lambda's SQS event shape, up to `maxConcurrency` invocations at once. What the worker
 * names in `batchItemFailures` (or a whole batch whose invocation threw or answered an unknown
 * id) comes back after the visibility timeout with `ApproximateReceiveCount` one higher, and
 * goes to the dead-letter queue after `maxReceiveCount` receives, as the redrive policy does.
 */
export function localQueue(options: LocalQueueOptions): LocalQueue {
  const batchSize = options.batchSize ?? 10;
  const maxConcurrency = options.maxConcurrency ?? 4;
  const visibilityMs = options.visibilityTimeoutMs ?? 2000;
  const maxReceives = options.maxReceiveCount ?? 5;
  const arn = `arn:aws:sqs:local:000000000000:${options.name ?? 'fanout'}`;
  const waiting: Held[] = [];
  const deadLetters: SqsRecord[] = [];
  let inFlight = 0;
  let inFlightRecords = 0;
  let invocations = 0;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let paused = false;
  let idle: (() => void)[] = [];

  const recordOf = (held: Held): SqsRecord => ({
    messageId: held.messageId,
    receiptHandle: `${held.messageId}#${held.receives}`,
    body: held.body,
    attributes: {
      ApproximateReceiveCount: String(held.receives),
      SentTimestamp: String(held.sentAt),
      SenderId: 'local',
      ApproximateFirstReceiveTimestamp: String(held.firstReceiveAt ?? Date.now()),
    },
    messageAttributes: {},
    md5OfBody: createHash('md5').update(held.body).digest('hex'),
    eventSource: 'aws:sqs',
    eventSourceARN: arn,
    awsRegion: 'local',
  });

  const settle = () => {
    if (waiting.length > 0 || inFlight > 0) return;
    const done = idle;
    idle = [];
    for (const resolve of done) resolve();
  };

  const back = (held: Held) => {
    if (held.receives >= maxReceives) {
      const record = recordOf(held);
      deadLetters.push(record);
      options.onDeadLetter?.(record);
      return;
    }
    held.availableAt = Date.now() + visibilityMs;
    waiting.push(held);
  };

  const invoke = async (batch: Held[]) => {
    invocations++;
    const event: SqsEvent = { Records: batch.map(recordOf) };
    let failedIds: Set<string>;
    try {
      const answer = await options.handler(event);
      const failures = answer?.batchItemFailures ?? [];
      const known = new Set(batch.map((h) => h.messageId));
      // Lambda treats an answer naming an id it did not send (or none) as a failure of the whole batch.
      failedIds = failures.every((f) => known.has(f.itemIdentifier))
        ? new Set(failures.map((f) => f.itemIdentifier))
        : known;
    } catch {
      failedIds = new Set(batch.map((h) => h.messageId));
    }
    for (const held of batch) if (failedIds.has(held.messageId)) back(held);
  };

  const pump = () => {
    if (closed || paused) return;
    const now = Date.now();
    while (inFlight < maxConcurrency) {
      const ready = waiting.filter((h) => h.availableAt <= now);
      if (ready.length === 0) break;
      const batch = ready.slice(0, batchSize);
      for (const held of batch) {
        waiting.splice(waiting.indexOf(held), 1);
        held.receives++;
        held.firstReceiveAt ??= now;
      }
      const extra = batch.filter((h) => options.duplicate?.(h.body));
      inFlight++;
      inFlightRecords += batch.length;
      void invoke(batch)
        .then(async () => {
          // A second copy of a record, as SQS may deliver one, in an invocation of its own.
          if (extra.length > 0) await invoke(extra.map((h) => ({ ...h, receives: h.receives })));
        })
        .finally(() => {
          inFlight--;
          inFlightRecords -= batch.length;
          pump();
          settle();
        });
    }
    if (timer) clearTimeout(timer);
    timer = undefined;
    const next = Math.min(...waiting.map((h) => h.availableAt));
    if (Number.isFinite(next)) {
      timer = setTimeout(pump, Math.max(0, next - Date.now()));
      timer.unref();
    }
  };

  return {
    async send(entries: readonly QueueEntry[]) {
      if (closed) throw Object.assign(new Error('the queue is closed'), { name: 'QueueClosed' });
      const now = Date.now();
      for (const entry of entries) {
        waiting.push({
          messageId: randomUUID(),
          body: entry.body,
          sentAt: now,
          availableAt: now + Math.min(900, Math.max(0, entry.delayS ?? 0)) * 1000,
          receives: 0,
        });
      }
      // Like the event source's poller: the worker runs after `send` has answered.
      setImmediate(pump);
    },
    get size() {
      return waiting.length + inFlightRecords;
    },
    deadLetters,
    get invocations() {
      return invocations;
    },
    pause: () => {
      paused = true;
    },
    resume: () => {
      paused = false;
      setImmediate(pump);
    },
    drained: () =>
      new Promise<void>((resolve) => {
        idle.push(resolve);
        settle();
      }),
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      waiting.length = 0;
      await new Promise<void>((resolve) => {
        idle.push(resolve);
        settle();
      });
    },
  };
}
