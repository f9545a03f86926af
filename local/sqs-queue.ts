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
/** A message as the queue holds it, from `send` to its deletion or the dead-letter queue. */
export interface HeldMessage {
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

/** The longest `DelaySeconds` SQS takes. */
const MAX_DELAY_S = 900;

/**
 * An SQS standard queue with a Lambda event source mapping, in process: `send` takes entries
 * (with `DelaySeconds`), a poller hands the worker batches of up to `batchSize` records in
 * Lambda's SQS event shape, up to `maxConcurrency` invocations at once. What the worker
 * names in `batchItemFailures` (or a whole batch whose invocation threw or answered an unknown
 * id) comes back after the visibility timeout with `ApproximateReceiveCount` one higher, and
 * goes to the dead-letter queue after `maxReceiveCount` receives, as the redrive policy does.
 */
export function localQueue(options: LocalQueueOptions): LocalQueue {
  const poller = new EventSourcePoller(options);
  return {
    send: (entries) => poller.send(entries),
    get size() {
      return poller.size;
    },
    deadLetters: poller.deadLetters,
    get invocations() {
      return poller.invocations;
    },
    pause: () => poller.pause(),
    resume: () => poller.resume(),
    drained: () => poller.whenIdle(),
    close: () => poller.close(),
  };
}

/** The record Lambda's event source mapping hands the worker for a held message. */
export function sqsRecord(held: HeldMessage, queueArn: string): SqsRecord {
  return {
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
    eventSourceARN: queueArn,
    awsRegion: 'local',
  };
}

/**
 * The ids of a batch that come back after the visibility timeout: those the worker's answer
 * names in `batchItemFailures`, or every id of the batch when the answer names one it was
 * not sent (Lambda then takes the whole batch as failed).
 */
export function failedIds(sentIds: readonly string[], answer: SqsBatchResponse | undefined): Set<string> {
  const failures = answer?.batchItemFailures ?? [];
  const known = new Set(sentIds);
  return failures.every((f) => known.has(f.itemIdentifier))
    ? new Set(failures.map((f) => f.itemIdentifier))
    : known;
}

/**
 * Takes out of `waiting` the first `batchSize` messages visible at `now` (in the order they
 * wait) and counts a receive for each: one batch of the event source's poller.
 */
export function takeBatch(waiting: HeldMessage[], now: number, batchSize: number): HeldMessage[] {
  const batch = waiting.filter((h) => h.availableAt <= now).slice(0, batchSize);
  for (const held of batch) {
    waiting.splice(waiting.indexOf(held), 1);
    held.receives++;
    held.firstReceiveAt ??= now;
  }
  return batch;
}

/** The queue's messages and the poller that invokes the worker with them. */
class EventSourcePoller {
  readonly deadLetters: SqsRecord[] = [];
  invocations = 0;
  private readonly batchSize: number;
  private readonly maxConcurrency: number;
  private readonly visibilityMs: number;
  private readonly maxReceives: number;
  private readonly arn: string;
  private readonly waiting: HeldMessage[] = [];
  private inFlight = 0;
  private inFlightRecords = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private paused = false;
  private idle: (() => void)[] = [];

  constructor(private readonly options: LocalQueueOptions) {
    this.batchSize = options.batchSize ?? 10;
    this.maxConcurrency = options.maxConcurrency ?? 4;
    this.visibilityMs = options.visibilityTimeoutMs ?? 2000;
    this.maxReceives = options.maxReceiveCount ?? 5;
    this.arn = `arn:aws:sqs:local:000000000000:${options.name ?? 'fanout'}`;
  }

  get size(): number {
    return this.waiting.length + this.inFlightRecords;
  }

  async send(entries: readonly QueueEntry[]): Promise<void> {
    if (this.closed) throw Object.assign(new Error('the queue is closed'), { name: 'QueueClosed' });
    const now = Date.now();
    for (const entry of entries) {
      this.waiting.push({
        messageId: randomUUID(),
        body: entry.body,
        sentAt: now,
        availableAt: now + Math.min(MAX_DELAY_S, Math.max(0, entry.delayS ?? 0)) * 1000,
        receives: 0,
      });
    }
    // Like the event source's poller: the worker runs after `send` has answered.
    setImmediate(this.pump);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    setImmediate(this.pump);
  }

  whenIdle(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.idle.push(resolve);
      this.settle();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.waiting.length = 0;
    await this.whenIdle();
  }

  /** The delivery loop: batches of visible messages to the worker, up to the concurrency. */
  private readonly pump = (): void => {
    if (this.closed || this.paused) return;
    const now = Date.now();
    while (this.inFlight < this.maxConcurrency) {
      const batch = takeBatch(this.waiting, now, this.batchSize);
      if (batch.length === 0) break;
      this.deliver(batch);
    }
    this.wakeAtNextVisible();
  };

  private deliver(batch: HeldMessage[]): void {
    const extra = batch.filter((h) => this.options.duplicate?.(h.body));
    this.inFlight++;
    this.inFlightRecords += batch.length;
    void this.invoke(batch)
      .then(async () => {
        // A second copy of a record, as SQS may deliver one, in an invocation of its own.
        if (extra.length > 0) await this.invoke(extra.map((h) => ({ ...h, receives: h.receives })));
      })
      .finally(() => {
        this.inFlight--;
        this.inFlightRecords -= batch.length;
        this.pump();
        this.settle();
      });
  }

  private async invoke(batch: HeldMessage[]): Promise<void> {
    this.invocations++;
    const event: SqsEvent = { Records: batch.map((h) => sqsRecord(h, this.arn)) };
    const sentIds = batch.map((h) => h.messageId);
    let failed: Set<string>;
    try {
      failed = failedIds(sentIds, await this.options.handler(event));
    } catch {
      failed = new Set(sentIds);
    }
    for (const held of batch) if (failed.has(held.messageId)) this.redrive(held);
  }

  /** A failed message: invisible for the visibility timeout, or dead-lettered after its last receive. */
  private redrive(held: HeldMessage): void {
    if (held.receives >= this.maxReceives) {
      const record = sqsRecord(held, this.arn);
      this.deadLetters.push(record);
      this.options.onDeadLetter?.(record);
      return;
    }
    held.availableAt = Date.now() + this.visibilityMs;
    this.waiting.push(held);
  }

  /** The visibility timer: the poller runs again when the next waiting message becomes visible. */
  private wakeAtNextVisible(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const next = Math.min(...this.waiting.map((h) => h.availableAt));
    if (Number.isFinite(next)) {
      this.timer = setTimeout(this.pump, Math.max(0, next - Date.now()));
      this.timer.unref();
    }
  }

  private settle(): void {
    if (this.waiting.length > 0 || this.inFlight > 0) return;
    const done = this.idle;
    this.idle = [];
    for (const resolve of done) resolve();
  }
}
