/** One message to enqueue; `delayS` holds it back (SQS `DelaySeconds`, 0-900). */
export interface QueueEntry {
  readonly body: string;
  readonly delayS?: number;
}

/** A work queue: SQS on AWS (lambdas/aws/sqs.ts), the emulation of local/sqs-queue.ts locally. */
export interface MessageQueue {
  /** Enqueues every entry or throws; never some silently. */
  send(entries: readonly QueueEntry[]): Promise<void>;
}
