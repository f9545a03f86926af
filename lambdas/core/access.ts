import { DeleteItemCommand, PutItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { nowS } from './clock.ts';
import type { Deps } from './deps.ts';
import { AppError } from './errors.ts';
import { allPages, batchGet, type Item, isLive, type KeyRef, N, num, S, storeCall, str } from './store.ts';
import type { AccessClaims } from './tokens.ts';

/** What a request carries that the revocation list and the blocklist may refuse. */
export interface AccessSubject {
  readonly claims?: Pick<AccessClaims, 'jti' | 'sid' | 'sub' | 'iat' | 'username'>;
  readonly username?: string;
  readonly ip?: string | undefined;
}

export interface Block {
  readonly reason: string;
  readonly expiresAt: number;
}

export interface AccessState {
  /** Why the token is refused: its jti, its session family, or a per-user "revoked before" mark. */
  readonly revoked: 'jti' | 'sid' | 'user' | undefined;
  readonly userBlock: Block | undefined;
  readonly ipBlock: Block | undefined;
}

export const revokedId = {
  jti: (jti: string) => `jti#${jti}`,
  sid: (sid: string) => `sid#${sid}`,
  user: (sub: string) => `user#${sub}`,
  ticket: (jti: string) => `ticket#${jti}`,
};

export const blockId = {
  user: (username: string) => `user#${username}`,
  ip: (ip: string) => `ip#${ip}`,
};

/** The keys whose rows decide access; read them together with other keys in one BatchGetItem. */
export function accessRefs(deps: Pick<Deps, 'tables'>, subject: AccessSubject): KeyRef[] {
  const { revoked, blocklist } = deps.tables;
  const refs: KeyRef[] = [];
  const c = subject.claims;
  if (c) {
    refs.push({ table: revoked, key: { id: S(revokedId.jti(c.jti)) } });
    refs.push({ table: revoked, key: { id: S(revokedId.sid(c.sid)) } });
    refs.push({ table: revoked, key: { id: S(revokedId.user(c.sub)) } });
  }
  const username = subject.username ?? c?.username;
  if (username) refs.push({ table: blocklist, key: { id: S(blockId.user(username)) } });
  if (subject.ip) refs.push({ table: blocklist, key: { id: S(blockId.ip(subject.ip)) } });
  return refs;
}

/**
 * Whether a user's live revocation mark (`user#<sub>`, its `before` in seconds) covers what was
 * issued at `issuedAtS`. Times have one-second resolution: the very second of a revocation is
 * covered too (fail closed).
 */
export function revokedBefore(mark: Item | undefined, issuedAtS: number): boolean {
  const before = num(mark, 'before');
  return before !== undefined && issuedAtS <= before;
}

/** Interprets the rows read for `accessRefs` (same order), checking every expiry in code. */
export function accessStateFrom(
  subject: AccessSubject,
  rows: readonly (Item | undefined)[],
  nowSeconds: number,
): AccessState {
  let i = 0;
  const next = () => {
    const row = rows[i++];
    return isLive(row, nowSeconds) ? row : undefined;
  };
  let revoked: AccessState['revoked'];
  const c = subject.claims;
  if (c) {
    const jti = next();
    const sid = next();
    const user = next();
    if (jti) revoked = 'jti';
    else if (sid) revoked = 'sid';
    else if (revokedBefore(user, c.iat)) revoked = 'user';
  }
  const block = (row: Item | undefined): Block | undefined =>
    row ? { reason: str(row, 'reason') ?? '', expiresAt: num(row, 'expiresAt') ?? 0 } : undefined;
  const userBlock = subject.username || c?.username ? block(next()) : undefined;
  const ipBlock = subject.ip ? block(next()) : undefined;
  return { revoked, userBlock, ipBlock };
}

/** Reads revocations and blocks for a subject in one round trip. */
export async function readAccessState(
  deps: Pick<Deps, 'db' | 'tables' | 'clock'>,
  subject: AccessSubject,
): Promise<AccessState> {
  const rows = await batchGet(deps.db, accessRefs(deps, subject), { consistent: true });
  return accessStateFrom(subject, rows, nowS(deps.clock));
}

/**
 * What a blocked user is told, everywhere: until when, and why. The reason is the one the
 * operator gave (or `rate_limit_violations`), written to be read by the user.
 *
 * @example blockedMessage('this user is blocked', { reason: 'spam', expiresAt: 1767225600 })
 * // 'this user is blocked until 2026-01-01T00:00:00Z: spam'
 */
export function blockedMessage(what: string, block: Block): string {
  const until = new Date(block.expiresAt * 1000).toISOString().replace('.000Z', 'Z');
  return `${what} until ${until}${block.reason ? `: ${block.reason}` : ''}`;
}

/** The error a request gets for an access state, or undefined when it may pass. */
export function accessDenial(state: AccessState): AppError | undefined {
  if (state.revoked) return new AppError('invalid_token', 'the token has been revoked');
  if (state.ipBlock)
    return new AppError('forbidden', blockedMessage('requests from this address are blocked', state.ipBlock));
  if (state.userBlock)
    return new AppError('forbidden', blockedMessage('this user is blocked', state.userBlock));
  return undefined;
}

async function putRevoked(deps: Pick<Deps, 'db' | 'tables'>, item: Item): Promise<void> {
  await storeCall(
    'revoke',
    (db) => db.send(new PutItemCommand({ TableName: deps.tables.revoked, Item: item })),
    deps.db,
  );
}

/** Refuses one access token (by `jti`, never by the token string) until it would have expired anyway. */
export async function revokeAccessToken(
  deps: Pick<Deps, 'db' | 'tables' | 'settings'>,
  jti: string,
  exp: number,
): Promise<void> {
  await putRevoked(deps, { id: S(revokedId.jti(jti)), expiresAt: N(exp + deps.settings.clockSkewS) });
}

/** Refuses every access token of a session family until the newest of them has expired. */
export async function revokeSidTokens(
  deps: Pick<Deps, 'db' | 'tables' | 'settings' | 'clock'>,
  sid: string,
): Promise<void> {
  const until = nowS(deps.clock) + deps.settings.accessTokenTtlS + deps.settings.clockSkewS;
  await putRevoked(deps, { id: S(revokedId.sid(sid)), expiresAt: N(until) });
}

/** Refuses every token and session of a user issued up to now; kept as long as any of them could live. */
export async function revokeUserTokens(
  deps: Pick<Deps, 'db' | 'tables' | 'settings' | 'clock'>,
  sub: string,
): Promise<number> {
  const now = nowS(deps.clock);
  const { accessTokenTtlS, refreshTokenTtlS, clockSkewS } = deps.settings;
  const until = now + Math.max(accessTokenTtlS, refreshTokenTtlS) + clockSkewS;
  await putRevoked(deps, { id: S(revokedId.user(sub)), before: N(now), expiresAt: N(until) });
  return now;
}

/** Blocks a user or an IP for `durationS` seconds. */
export async function putBlock(
  deps: Pick<Deps, 'db' | 'tables' | 'clock'>,
  id: string,
  durationS: number,
  reason: string,
  by: string,
): Promise<Block> {
  const now = nowS(deps.clock);
  const block: Block = { reason: reason.slice(0, 256), expiresAt: now + durationS };
  await storeCall(
    'block',
    (db) =>
      db.send(
        new PutItemCommand({
          TableName: deps.tables.blocklist,
          Item: {
            id: S(id),
            reason: S(block.reason),
            by: S(by),
            createdAt: N(now),
            expiresAt: N(block.expiresAt),
          },
        }),
      ),
    deps.db,
  );
  return block;
}

export async function removeBlock(deps: Pick<Deps, 'db' | 'tables'>, id: string): Promise<void> {
  await storeCall(
    'unblock',
    (db) => db.send(new DeleteItemCommand({ TableName: deps.tables.blocklist, Key: { id: S(id) } })),
    deps.db,
  );
}

export interface BlockView {
  readonly kind: 'user' | 'ip';
  readonly subject: string;
  readonly reason: string;
  /** Who set it: an admin's username, or `system` for automatic blocks. */
  readonly by: string;
  /** Epoch seconds at which the block ends. */
  readonly until: number;
}

/** The blocks in force now, soonest to end first (a Scan: operators' tooling, never a request path). */
export async function listBlocks(deps: Pick<Deps, 'db' | 'tables' | 'clock'>): Promise<BlockView[]> {
  const now = nowS(deps.clock);
  const blocks: BlockView[] = [];
  const rows = await allPages((start) =>
    storeCall(
      'list blocks',
      (db) =>
        db.send(
          new ScanCommand({
            TableName: deps.tables.blocklist,
            ExclusiveStartKey: start,
            ConsistentRead: true,
          }),
        ),
      deps.db,
    ),
  );
  for (const row of rows) {
    const id = str(row, 'id') ?? '';
    const kind = id.startsWith('user#') ? 'user' : id.startsWith('ip#') ? 'ip' : undefined;
    if (!kind || !isLive(row, now)) continue; // expired rows linger until TTL deletes them
    blocks.push({
      kind,
      subject: id.slice(id.indexOf('#') + 1),
      reason: str(row, 'reason') ?? '',
      by: str(row, 'by') ?? '',
      until: num(row, 'expiresAt') ?? 0,
    });
  }
  return blocks.sort((a, b) => a.until - b.until || a.subject.localeCompare(b.subject));
}
