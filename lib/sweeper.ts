import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { HandlerFunction } from './handler-function.ts';

export interface SweeperScheduleProps {
  readonly functions: readonly { readonly name: string; readonly fn: HandlerFunction }[];
  readonly intervalS: number;
}

/**
 * Runs each sweeper every `sweepIntervalS`, at most once per interval. EventBridge's own
 * `retryAttempts: 0` does not reach Lambda: an asynchronous invocation that fails is retried
 * twice more by Lambda itself unless the function says otherwise. So the function's async
 * config says no retries, and an event that cannot run within one interval (an error, a
 * timeout, or a previous run still holding the single reserved slot) is dropped to the
 * on-failure queue, which an alarm watches: the next run redoes the work anyway.
 */
export class SweeperSchedule extends Construct {
  /** Records of sweeps that failed or never ran (Lambda's on-failure destination). */
  readonly failures: sqs.Queue;

  constructor(scope: Construct, id: string, props: SweeperScheduleProps) {
    super(scope, id);
    const maxAge = Duration.seconds(Math.max(60, props.intervalS));
    this.failures = new sqs.Queue(this, 'Failures', {
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    for (const { name, fn } of props.functions) {
      fn.configureAsyncInvoke({
        retryAttempts: 0,
        maxEventAge: maxAge,
        onFailure: new destinations.SqsDestination(this.failures),
      });
      new events.Rule(this, `${fn.node.id}Schedule`, {
        description: `Runs ${name} every ${props.intervalS} s (sweepIntervalS)`,
        schedule: events.Schedule.rate(Duration.seconds(props.intervalS)),
        targets: [new targets.LambdaFunction(fn, { retryAttempts: 0, maxEventAge: maxAge })],
      });
    }
  }
}
