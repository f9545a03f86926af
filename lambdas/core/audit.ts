import type { Clock } from './clock.ts';

export type AuditEvent =
  | 'auth.register'
  | 'auth.login'
  | 'auth.login_failed'
  | 'auth.refresh'
  | 'auth.refresh_reuse'
  | 'auth.logout'
  | 'auth.token_exchange'
  | 'auth.denied'
  | 'ws.denied'
  | 'ws.connect'
  | 'ws.disconnect'
  | 'ws.rate_limited'
  | 'ws.closed_by_server'
  | 'user.blocked'
  | 'user.unblocked'
  | 'user.role_granted'
  | 'ip.blocked'
  | 'ip.unblocked'
  | 'token.revoked'
  | 'admin.publish'
  | 'room.denied'
  | 'room.granted'
  | 'room.grant_revoked'
  | 'sweep.run'
  | 'delivery.failed'
  | 'error';

export type Level = 'info' | 'warn' | 'error';

/**
 * The fields an audit line may carry. A closed set on purpose: there is no field a token,
 * a password or a key could be put into.
 */
export interface AuditFields {
  username?: string;
  sub?: string;
  ip?: string;
  connectionId?: string;
  reason?: string;
  room?: string;
  jti?: string;
  sid?: string;
  role?: string;
  /** A grant's access (`member` or `reader`) in `room.granted`. */
  access?: string;
  count?: number;
  durationS?: number;
  by?: string;
  errorName?: string;
  route?: string;
  /** Fan-out figures of `delivery.failed`. */
  delivered?: number;
  failed?: number;
  retries?: number;
}

export type Audit = (level: Level, event: AuditEvent, fields?: AuditFields) => void;

const ALLOWED = new Set<string>([
  'username',
  'sub',
  'ip',
  'connectionId',
  'reason',
  'room',
  'jti',
  'sid',
  'role',
  'access',
  'count',
  'durationS',
  'by',
  'errorName',
  'route',
  'delivered',
  'failed',
  'retries',
]);

/** JSON audit lines, one object a line, written through `write` (stdout on Lambda, which CloudWatch keeps). */
export function createAudit(write: (line: string) => void, clock: Clock): Audit {
  return (level, event, fields = {}) => {
    const time = new Date(clock.now()).toISOString();
    // `timestamp` as well as the spec's `time`: Lambda's log-level filtering files a JSON line
    // without a valid `timestamp` as INFO, so a raised log level would drop warnings and errors.
    const line: Record<string, unknown> = { level, event, time, timestamp: time };
    for (const [k, v] of Object.entries(fields)) {
      // Runtime guard as well as the type: callers in plain JS or casts cannot smuggle extra fields.
      if (ALLOWED.has(k) && v !== undefined) line[k] = typeof v === 'string' ? v.slice(0, 256) : v;
    }
    write(JSON.stringify(line));
  };
}

/** Audit that writes to stdout. */
export function stdoutAudit(clock: Clock): Audit {
  return createAudit((line) => process.stdout.write(`${line}\n`), clock);
}
