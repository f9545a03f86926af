import { Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { HandlerFunction } from './handler-function.ts';

/** Receives after which a job goes to the dead-letter queue: its own tries plus SQS's at-least-once. */
export const FANOUT_MAX_RECEIVES = 5;
/** Records per worker invocation: 10 jobs of about 100 members, 16 posts at a time each. */
export const FANOUT_BATCH_SIZE = 10;
/** Worker invocations at most at once (the event source's maximum concurrency). */
export const FANOUT_MAX_CONCURRENCY = 100;

export interface FanoutQueueProps {
  /** The workers' timeout: a job must be invisible to others at least six times that long. */
  readonly workerTimeoutS: number;
}

/**
 * The queue that feeds the fan-out workers of big rooms (lambdas/core/fanout.ts): encrypted,
 * TLS only, with a dead-letter queue after FANOUT_MAX_RECEIVES receives, which an alarm watches.
 * A job is invisible for six times the worker's timeout once received, as AWS advises for
 * Lambda consumers, so a batch still running is not handed to a second worker.
 */
export class FanoutQueue extends Construct {
  readonly queue: sqs.Queue;
  readonly deadLetters: sqs.Queue;

  constructor(scope: Construct, id: string, props: FanoutQueueProps) {
    super(scope, id);
    this.deadLetters = new sqs.Queue(this, 'DeadLetters', {
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    this.queue = new sqs.Queue(this, 'Jobs', {
      // A job is worth nothing after a few minutes: its message is history by then.
      retentionPeriod: Duration.hours(1),
      visibilityTimeout: Duration.seconds(props.workerTimeoutS * 6),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      deadLetterQueue: { queue: this.deadLetters, maxReceiveCount: FANOUT_MAX_RECEIVES },
    });
  }

  /** Lets a function enqueue jobs: `sqs:SendMessage` (which covers SendMessageBatch) on this queue only. */
  grantSend(fn: HandlerFunction): void {
    fn.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [this.queue.queueArn] }),
    );
    fn.addEnvironment('FANOUT_QUEUE_URL', this.queue.queueUrl);
  }

  /** Makes a function the queue's worker: batches with partial-batch failures. */
  consumeWith(fn: HandlerFunction): void {
    fn.addEventSource(
      new SqsEventSource(this.queue, {
        batchSize: FANOUT_BATCH_SIZE,
        reportBatchItemFailures: true,
        maxConcurrency: FANOUT_MAX_CONCURRENCY,
      }),
    );
  }
}
