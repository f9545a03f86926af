import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Audit } from './audit.ts';
import type { Clock } from './clock.ts';
import type { KeySource } from './keys.ts';
import type { Settings } from './settings.ts';
import type { TableNames } from './tables.ts';

/** Closes sockets from the server side after sending `{"type":"closing","reason"}`. */
export interface SocketCloser {
  closeBySid(sid: string, reason: CloseReason): Promise<number>;
  closeByUser(username: string, reason: CloseReason): Promise<number>;
}

export type CloseReason = 'token_expired' | 'token_revoked' | 'blocked';

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
  readonly sockets?: SocketCloser;
}
