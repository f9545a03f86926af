import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { GetItemCommand, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { nowS } from './clock.ts';
import type { Deps } from './deps.ts';
import { AppError } from './errors.ts';
import { newMessageKey } from './frame-crypto.ts';
import { type Item, isLive, N, num, S, SS, storeCall, str, strs, unlessConditionFails } from './store.ts';

/**
 * A refresh-token family. Each refresh spends the current token and issues the next;
 * a spent token presented again means it was stolen, and the whole family is revoked.
 */
export interface Session {
  readonly sid: string;
  readonly sub: string;
  readonly username: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly revokedAt: number | undefined;
  /** The JWE key of the session's sockets, with `messageEncryption` on. */
  readonly messageKey: string | undefined;
}

const PREFIX = 'rt1';
const TOKEN = /^rt1\.([0-9a-f-]{36})\.([A-Za-z0-9_-]{43})$/;
/** Spent hashes kept per family to recognise reuse; older ones are dropped (their tokens are long dead). */
const MAX_SPENT = 500;

/** Refresh tokens are opaque: `rt1.<sid>.<256 random bits>`. Only a SHA-256 of the secret is stored. */
function newSecret(): { secret: string; hash: string } {
  const secret = randomBytes(32).toString('base64url');
  return { secret, hash: hashSecret(secret) };
}

function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('base64url');
}

function parseRefreshToken(token: unknown): { sid: string; secret: string } {
  const m = typeof token === 'string' && token.length < 200 ? TOKEN.exec(token) : null;
  if (!m) throw new AppError('invalid_token', 'the refresh token is not valid');
  return { sid: m[1] ?? '', secret: m[2] ?? '' };
}

function sessionFrom(item: Item): Session {
  return {
    sid: str(item, 'sid') ?? '',
    sub: str(item, 'sub') ?? '',
    username: str(item, 'username') ?? '',
    createdAt: num(item, 'createdAt') ?? 0,
    expiresAt: num(item, 'expiresAt') ?? 0,
    revokedAt: num(item, 'revokedAt'),
    messageKey: str(item, 'messageKey'),
  };
}

/** Starts a new family for a user; returns it with its first refresh token. */
export async function createSession(
  deps: Pick<Deps, 'db' | 'tables' | 'clock' | 'settings'>,
  user: { sub: string; username: string },
): Promise<{ session: Session; refreshToken: string }> {
  const now = nowS(deps.clock);
  const sid = randomUUID();
  const { secret, hash } = newSecret();
  const session: Session = {
    sid,
    sub: user.sub,
    username: user.username,
    createdAt: now,
    expiresAt: now + deps.settings.refreshTokenTtlS,
    revokedAt: undefined,
    messageKey: deps.settings.messageEncryption ? newMessageKey() : undefined,
  };
  await storeCall(
    'create session',
    (db) =>
      db.send(
        new PutItemCommand({
          TableName: deps.tables.sessions,
          Item: {
            sid: S(sid),
            sub: S(user.sub),
            username: S(user.username),
            secretHash: S(hash),
            createdAt: N(now),
            expiresAt: N(session.expiresAt),
            ...(session.messageKey ? { messageKey: S(session.messageKey) } : {}),
          },
          ConditionExpression: 'attribute_not_exists(sid)',
        }),
      ),
    deps.db,
  );
  return { session, refreshToken: `${PREFIX}.${sid}.${secret}` };
}

export type RotateOutcome<T = undefined> =
  | { kind: 'rotated'; session: Session; refreshToken: string; alongside: T }
  /** A spent token came back: the caller must revoke the family and its access tokens. */
  | { kind: 'reused'; session: Session };

/**
 * Spends a refresh token and issues the next one of its family, atomically: a
 * conditional update on the current hash, so one token refreshes exactly once.
 * Unknown, expired, revoked or forged tokens are `invalid_token`.
 */
export async function rotateSession<T = undefined>(
  deps: Pick<Deps, 'db' | 'tables' | 'clock' | 'settings'>,
  refreshToken: unknown,
  /** Reads to run in the same round trip as the rotation, once the session is known. */
  alongside?: (session: Session) => Promise<T>,
): Promise<RotateOutcome<T>> {
  const { sid, secret } = parseRefreshToken(refreshToken);
  const presented = hashSecret(secret);
  const item = await readSession(deps, sid);
  const now = nowS(deps.clock);
  const { session, spent: spentBefore, reused } = presentedSession(item, presented, now);
  if (reused) return { kind: 'reused', session };

  const next = newSecret();
  const expiresAt = now + deps.settings.refreshTokenTtlS;
  const spent = [...spentBefore, presented].slice(-MAX_SPENT);
  const rotation = spendPresented(deps, { sid, presented, next: next.hash, spent, expiresAt, now });
  const [rotated, extra] = await Promise.all([rotation, alongside ? alongside(session) : (undefined as T)]);
  if (!rotated) return { kind: 'reused', session };
  return {
    kind: 'rotated',
    session: { ...session, expiresAt },
    refreshToken: `${PREFIX}.${sid}.${next.secret}`,
    alongside: extra,
  };
}

async function readSession(deps: Pick<Deps, 'db' | 'tables'>, sid: string): Promise<Item | undefined> {
  const out = await storeCall(
    'get session',
    (db) =>
      db.send(
        new GetItemCommand({ TableName: deps.tables.sessions, Key: { sid: S(sid) }, ConsistentRead: true }),
      ),
    deps.db,
  );
  return out.Item;
}

/**
 * The session a presented token names, and whether the token is a spent one back: unknown,
 * expired and revoked families are `invalid_token`, and so is a secret that is neither the
 * current one nor a spent one.
 */
function presentedSession(
  item: Item | undefined,
  presented: string,
  now: number,
): { session: Session; spent: readonly string[]; reused: boolean } {
  if (!isLive(item, now)) throw new AppError('invalid_token', 'the refresh token has expired or is unknown');
  const session = sessionFrom(item);
  if (session.revokedAt !== undefined) throw new AppError('invalid_token', 'the session has been revoked');
  const spent = strs(item, 'spent');
  if (spent.includes(presented)) return { session, spent, reused: true };
  if (str(item, 'secretHash') !== presented)
    throw new AppError('invalid_token', 'the refresh token is not valid');
  return { session, spent, reused: false };
}

/**
 * Swaps the presented hash for the next one, on condition that it is still the current one.
 * False when another request spent this token first: this one is a reuse of a spent token.
 */
async function spendPresented(
  deps: Pick<Deps, 'db' | 'tables'>,
  r: { sid: string; presented: string; next: string; spent: string[]; expiresAt: number; now: number },
): Promise<boolean> {
  const out = await unlessConditionFails(
    storeCall(
      'rotate session',
      (db) =>
        db.send(
          new UpdateItemCommand({
            TableName: deps.tables.sessions,
            Key: { sid: S(r.sid) },
            UpdateExpression: 'SET secretHash = :next, spent = :spent, expiresAt = :exp, rotatedAt = :now',
            ConditionExpression: 'secretHash = :presented AND attribute_not_exists(revokedAt)',
            ExpressionAttributeValues: {
              ':next': S(r.next),
              ':spent': SS(r.spent),
              ':exp': N(r.expiresAt),
              ':now': N(r.now),
              ':presented': S(r.presented),
            },
          }),
        ),
      deps.db,
    ),
  );
  return out !== undefined;
}

/** Marks a family revoked so that none of its refresh tokens works again. */
export async function revokeSession(deps: Pick<Deps, 'db' | 'tables' | 'clock'>, sid: string): Promise<void> {
  await unlessConditionFails(
    storeCall(
      'revoke session',
      (db) =>
        db.send(
          new UpdateItemCommand({
            TableName: deps.tables.sessions,
            Key: { sid: S(sid) },
            UpdateExpression: 'SET revokedAt = if_not_exists(revokedAt, :now)',
            ConditionExpression: 'attribute_exists(sid)',
            ExpressionAttributeValues: { ':now': N(nowS(deps.clock)) },
          }),
        ),
      deps.db,
    ),
  );
}

/** The message key of a session, if it has one (for `$connect` with `messageEncryption`). */
export async function sessionMessageKey(
  deps: Pick<Deps, 'db' | 'tables'>,
  sid: string,
): Promise<string | undefined> {
  const out = await storeCall(
    'session key',
    (db) =>
      db.send(
        new GetItemCommand({
          TableName: deps.tables.sessions,
          Key: { sid: S(sid) },
          ProjectionExpression: 'messageKey',
          ConsistentRead: true,
        }),
      ),
    deps.db,
  );
  return str(out.Item, 'messageKey');
}
