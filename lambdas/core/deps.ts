import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Audit } from './audit.ts';
import type { Clock } from './clock.ts';
import type { FanoutTuning } from './fanout.ts';
import type { KeySource } from './keys.ts';
import type { MessageQueue } from './queue.ts';
import type { Settings } from './settings.ts';
import type { TableNames } from './tables.ts';

/**
 * API Gateway's `@connections` API (the same client talks to AWS and to the local
 * gateway). `false` means the connection is gone (410).
 */
export interface ConnectionsApi {
  post(connectionId: string, data: string): Promise<boolean>;
  close(connectionId: string): Promise<boolean>;
  exists(connectionId: string): Promise<boolean>;
}

/**
 * Everything the domain needs from the outside, built once per container by
 * `runtime()` on AWS and by the local system; tests build their own.
 */
export interface Deps {
  readonly settings: Settings;
  readonly db: DynamoDBClient;
  readonly tables: TableNames;
  readonly keys: KeySource;
  readonly clock: Clock;
  readonly audit: Audit;
  /** Present in functions allowed to post to and close sockets. */
  readonly api?: ConnectionsApi;
  /** The fan-out queue, in functions that deliver to big rooms (lambdas/core/fanout.ts). */
  readonly queue?: MessageQueue;
  /** Overrides of the fan-out's shape (tests and the bench; the defaults are FANOUT_TUNING). */
  readonly fanout?: Partial<FanoutTuning>;
}
