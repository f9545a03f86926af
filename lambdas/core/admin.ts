import { blockId, putBlock, removeBlock, revokeUserTokens } from './access.ts';
import type { Deps } from './deps.ts';
import { AppError } from './errors.ts';
import { normalizeIp } from './ip.ts';
import { idempotencyKeyOf, messageContent } from './protocol.ts';
import { publishedReply, publishMessage } from './publish.ts';
import { parseRoom } from './rooms.ts';
import { allSocketRows } from './socket-rows.ts';
import { closeUserSockets } from './sockets.ts';
import type { AccessClaims } from './tokens.ts';
import { getUser, normalizeUsername, type User } from './users.ts';

const MAX_BLOCK_S = 365 * 86_400;

/** Refuses a caller without one of `roles` (`forbidden`, 403). */
export function requireRole(claims: AccessClaims, roles: readonly string[]): void {
  if (!claims.roles.some((r) => roles.includes(r))) {
    throw new AppError('forbidden', `this needs the role ${roles.join(' or ')}`);
  }
}

async function existingUser(deps: Deps, raw: string | undefined): Promise<User> {
  const username = normalizeUsername(raw);
  const user = username ? await getUser(deps, username) : undefined;
  if (!user) throw new AppError('not_found', 'no such user');
  return user;
}

function blockBody(body: Record<string, unknown>): { durationS: number; reason: string } {
  const d = body.duration_s;
  if (typeof d !== 'number' || !Number.isInteger(d) || d < 1 || d > MAX_BLOCK_S) {
    throw new AppError('invalid_request', `duration_s must be a whole number of seconds, 1-${MAX_BLOCK_S}`);
  }
  const reason = body.reason ?? '';
  if (typeof reason !== 'string' || reason.length > 256)
    throw new AppError('invalid_request', 'reason must be a string of up to 256 characters');
  return { durationS: d, reason };
}

/** Blocks a user for `duration_s` and closes every socket of theirs with `closing: blocked`. */
export async function blockUser(
  deps: Deps,
  admin: Pick<AccessClaims, 'username'>,
  rawUsername: string | undefined,
  body: Record<string, unknown>,
): Promise<void> {
  const { durationS, reason } = blockBody(body);
  const user = await existingUser(deps, rawUsername);
  await putBlock(deps, blockId.user(user.username), durationS, reason, admin.username);
  deps.audit('warn', 'user.blocked', {
    username: user.username,
    sub: user.sub,
    reason,
    durationS,
    by: admin.username,
  });
  await closeUserSockets(deps, user.username, 'blocked');
}

export async function unblockUser(
  deps: Deps,
  admin: Pick<AccessClaims, 'username'>,
  rawUsername: string | undefined,
): Promise<void> {
  const username = normalizeUsername(rawUsername);
  if (!username) throw new AppError('not_found', 'no such user');
  await removeBlock(deps, blockId.user(username));
  deps.audit('info', 'user.unblocked', { username, by: admin.username });
}

function ipOf(raw: string | undefined): string {
  // Path parameters arrive decoded, as API Gateway passes them.
  const ip = normalizeIp(raw);
  if (!ip) throw new AppError('invalid_request', 'not an IP address');
  return ip;
}

/** Blocks an IP: its handshakes and logins get 403 until the block ends. */
export async function blockIp(
  deps: Deps,
  admin: Pick<AccessClaims, 'username'>,
  raw: string | undefined,
  body: Record<string, unknown>,
): Promise<void> {
  const ip = ipOf(raw);
  const { durationS, reason } = blockBody(body);
  await putBlock(deps, blockId.ip(ip), durationS, reason, admin.username);
  deps.audit('warn', 'ip.blocked', { ip, reason, durationS, by: admin.username });
}

export async function unblockIp(deps: Deps, admin: AccessClaims, raw: string | undefined): Promise<void> {
  const ip = ipOf(raw);
  await removeBlock(deps, blockId.ip(ip));
  deps.audit('info', 'ip.unblocked', { ip, by: admin.username });
}

/** Refuses every token and session of a user issued up to now, and closes their sockets. */
export async function revokeUser(
  deps: Deps,
  admin: Pick<AccessClaims, 'username'>,
  rawUsername: string | undefined,
): Promise<void> {
  const user = await existingUser(deps, rawUsername);
  await revokeUserTokens(deps, user.sub);
  deps.audit('warn', 'token.revoked', {
    username: user.username,
    sub: user.sub,
    reason: 'admin_revoke',
    by: admin.username,
  });
  await closeUserSockets(deps, user.username, 'token_revoked');
}

export interface ConnectionView {
  connectionId: string;
  username: string;
  ip: string;
  connectedAt: number;
  rooms: readonly string[];
}

/** Every open socket (a Scan: an operator's question, never a request path of clients). */
export async function listConnections(deps: Deps): Promise<ConnectionView[]> {
  return (await allSocketRows(deps))
    .map((c) => ({
      connectionId: c.connectionId,
      username: c.username,
      ip: c.ip,
      connectedAt: c.connectedAt,
      rooms: c.rooms,
    }))
    .sort((a, b) => a.connectedAt - b.connectedAt);
}

/** Bytes of a message's content: its text (UTF-8) and its data (as JSON). */
export function contentBytes(content: { text?: string; data?: unknown }): number {
  return (
    (content.text === undefined ? 0 : Buffer.byteLength(content.text)) +
    (content.data === undefined ? 0 : Buffer.byteLength(JSON.stringify(content.data)))
  );
}

/**
 * Delivers a message to a room's members as a message `from` the caller, and keeps it in
 * history; a repeated `idempotencyKey` is answered with the first one's reference.
 */
export async function publishToRoom(
  deps: Deps,
  caller: AccessClaims,
  rawRoom: string | undefined,
  body: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  // Every kind of room: publishers reach a `user:` room (all of its user's sockets) and speak in `broadcast:` ones.
  const room = parseRoom(rawRoom).name;
  const content = messageContent(body);
  if (contentBytes(content) > deps.settings.maxMessageBytes) {
    throw new AppError(
      'invalid_request',
      `text and data are limited to ${deps.settings.maxMessageBytes} bytes`,
    );
  }
  const idempotencyKey = idempotencyKeyOf(body.idempotencyKey);
  const published = await publishMessage(deps, {
    room,
    from: caller.username,
    content,
    ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
  });
  // A big room (`queued`): its members are posted to by the fan-out workers, after this answer;
  // `count` is then the jobs queued, as it is the posts made for a room posted to directly.
  const count = published.queued ? published.jobs : published.delivered;
  deps.audit('info', 'admin.publish', {
    username: caller.username,
    room,
    ...(count === undefined ? {} : { count }),
    ...(published.duplicate ? { reason: 'duplicate' } : {}),
  });
  return {
    ...publishedReply(published),
    ...(published.queued ? { queued: true } : { delivered: published.delivered ?? 0 }),
  };
}
