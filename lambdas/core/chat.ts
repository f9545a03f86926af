import { accessDenial, accessRefs, accessStateFrom, blockId, putBlock, readAccessState } from './access.ts';
import { nowS } from './clock.ts';
import { incrementCounter, secondsLeft, windowAt } from './counters.ts';
import type { Deps } from './deps.ts';
import { AppError } from './errors.ts';
import { decryptFrame, encryptFrame } from './frame-crypto.ts';
import { fitFrame } from './frame-size.ts';
import { accessOf, grantRef, readGrant } from './grants.ts';
import { joinRoom, leaveRoom } from './memberships.ts';
import { type ClientId, type ClientMessage, clientIdOf, errorFrame, parseClientMessage } from './protocol.ts';
import { publishedReply, publishMessage } from './publish.ts';
import { joinHistory } from './recovery.ts';
import { roomMembers } from './room-members.ts';
import {
  type Access,
  denialMessage,
  isPrivateRoomName,
  joinDenial,
  needsGrant,
  parseRoom,
  postDenial,
  type Room,
  type RoomDenial,
  userRoom,
} from './rooms.ts';
import { type SocketRow, socketRowFrom, socketRowKey, updateSocketToken } from './socket-rows.ts';
import { type CloseReason, closeSocket, closeUserSockets, sendToSockets } from './sockets.ts';
import { batchGet } from './store.ts';
import { verifyAccessToken } from './tokens.ts';

/** Rooms one socket may join (its own `user:` room aside): bounds the connection row and the work of $disconnect. */
export const MAX_ROOMS_PER_CONNECTION = 50;

/** Who sent a frame, from the authorizer context frozen at `$connect`. */
export interface FrameSender {
  readonly connectionId: string;
  readonly sub: string;
  readonly username: string;
  readonly jti: string;
  readonly sid: string;
  readonly iat: number;
}

/** What the caller gets back on its own socket (the route response), if anything. */
export type FrameReply = Record<string, unknown> | undefined;

/** The user's grant to a `private:` room: read with the frame's first rows when it names one, else on demand. */
type GrantOf = (room: string) => Promise<Access | undefined>;

/**
 * Handles one client frame. Round trip 1, in parallel: the user's rate-limit counter
 * (one atomic ADD shared by all of the user's sockets) and one BatchGetItem for the
 * live connection row, the token's revocations, the user's block and, for a frame naming
 * a `private:` room, the user's grant to it. A chat message then needs one more before
 * fan-out (the room's first page of members, a Query, beside its `seq` update and the
 * sender's re-read), two with an `idempotencyKey` (its conditional write).
 */
export async function handleFrame(deps: Deps, sender: FrameSender, body: string): Promise<FrameReply> {
  const { settings } = deps;
  const now = nowS(deps.clock);
  const window = windowAt(now, settings.rateLimitWindowS);
  const subject = { claims: { ...sender }, username: sender.username };
  // The frame is parsed once here for what must be known before any read; parseClientMessage validates it later.
  const peek = peekFrame(body);
  const grantRoom = peek.grantRoom;
  const read = (consistent: boolean) =>
    batchGet(
      deps.db,
      [
        { table: deps.tables.connections, key: socketRowKey(sender.connectionId) },
        ...accessRefs(deps, subject),
        // Last, so the rows before it are laid out as refusalOf reads them.
        ...(grantRoom ? [grantRef(deps, grantRoom, sender.username)] : []),
      ],
      { consistent },
    );
  // Every frame but a keep-alive reads its rows strongly consistent: a frame read with a stale
  // view could act for a token revoked or a user blocked a moment ago. A `ping` reads eventually
  // consistent (half the read units): a stale view that lets it pass gives nothing but a pong
  // (no room, no member, no message), the revoking path closes the socket itself, and the next
  // other frame reads strongly. A stale view that refuses it (a row written at $connect or a
  // refresh not yet seen) is read again strongly before the socket is closed on it.
  const keepAlive = peek.keepAlive;
  const [count, firstRows] = await Promise.all([
    incrementCounter(deps, `ws#${sender.sub}`, window),
    read(!keepAlive),
  ]);
  let rows = firstRows;
  let refusal = refusalOf(subject, rows, now, settings.clockSkewS);
  if (refusal && keepAlive) {
    rows = await read(true);
    refusal = refusalOf(subject, rows, now, settings.clockSkewS);
  }
  if (refusal || !rows[0]) return close(deps, sender, refusal ?? 'token_revoked');
  const conn = socketRowFrom(rows[0]);
  const prefetched = grantRoom ? accessOf(rows.at(-1)) : undefined;
  const grantOf: GrantOf = (room) =>
    room === grantRoom ? Promise.resolve(prefetched) : readGrant(deps, room, conn.username);

  const id = peek.id;
  if (count > settings.rateLimitMax) {
    const violations = count - settings.rateLimitMax;
    if (violations > settings.blockAfterViolations) {
      await blockForViolations(deps, sender, violations);
      return undefined;
    }
    if (violations === 1)
      deps.audit('warn', 'ws.rate_limited', {
        username: sender.username,
        sub: sender.sub,
        connectionId: sender.connectionId,
      });
    throw new AppError('rate_limited', 'too many messages; slow down', {
      retryAfterS: secondsLeft(window, now),
    });
  }
  if (Buffer.byteLength(body) > settings.maxMessageBytes) {
    throw new AppError('too_large', `frames are limited to ${settings.maxMessageBytes} bytes`);
  }
  const message = parseClientMessage(body);
  if (message.type === 'encrypted') return handleEncrypted(deps, conn, message.jwe, now, grantOf);
  return dispatch(deps, conn, message, now, id, grantOf);
}

/**
 * `{"type":"encrypted","jwe"}`: decrypts with the socket's session key, handles the
 * inner message like any other, and encrypts the reply (errors included) the same way.
 */
async function handleEncrypted(
  deps: Deps,
  conn: SocketRow,
  jwe: string,
  now: number,
  grantOf: GrantOf,
): Promise<FrameReply> {
  const key = conn.messageKey;
  if (!key) throw new AppError('invalid_request', 'message encryption is not enabled');
  const inner = await decryptFrame(key, jwe, deps.settings.maxMessageBytes);
  const id = peekId(inner);
  let answer: FrameReply;
  try {
    const message = parseClientMessage(inner);
    if (message.type === 'encrypted')
      throw new AppError('invalid_request', 'an encrypted frame cannot hold another');
    answer = await dispatch(deps, conn, message, now, id, grantOf);
  } catch (err) {
    if (!(err instanceof AppError) || err.code === 'internal' || err.code === 'unavailable') throw err;
    answer = errorFrame(err, id) as unknown as Record<string, unknown>;
  }
  return answer ? await encryptFrame(key, answer) : undefined;
}

/** Why a frame's rows (connection row first, then `accessRefs`) refuse its socket, if they do. */
function refusalOf(
  subject: Parameters<typeof accessStateFrom>[0],
  rows: Awaited<ReturnType<typeof batchGet>>,
  now: number,
  clockSkewS: number,
): 'token_revoked' | 'blocked' | 'token_expired' | undefined {
  const [row, ...accessRows] = rows;
  const state = accessStateFrom(subject, accessRows, now);
  if (!row || state.revoked) return 'token_revoked';
  if (state.userBlock) return 'blocked';
  if (socketRowFrom(row).exp + clockSkewS <= now) return 'token_expired';
  return undefined;
}

/** What a frame says of itself before any read: see `peekFrame`. */
interface FramePeek {
  /** A plain `{"type":"ping"}` (with or without an `id`). */
  readonly keepAlive: boolean;
  /**
   * The `private:` room it names, so that the user's grant to it is read in the frame's first
   * round trip. An encrypted frame's room is known only once it is decrypted: its grant is read then.
   */
  readonly grantRoom?: string | undefined;
  /** Its `id`, so that even the error of a frame that does not parse can be matched to it. */
  readonly id?: ClientId | undefined;
}

/** A frame's JSON object, if it is one (arrays included), parsed without throwing. */
function peekObject(body: string): Record<string, unknown> | undefined {
  if (body.length > 64 * 1024) return undefined;
  try {
    const value = JSON.parse(body) as unknown;
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Tells a frame's keep-alive, `private:` room and `id` apart with one parse, before any read. */
function peekFrame(body: string): FramePeek {
  const value = peekObject(body);
  if (!value) return { keepAlive: false };
  const room = value.room;
  return {
    keepAlive: body.length <= 256 && !Array.isArray(value) && value.type === 'ping',
    grantRoom: isPrivateRoomName(room) && room.length <= 80 ? room : undefined,
    id: clientIdOf(value.id),
  };
}

/** The `id` of a frame that may not parse, so that even its error can be matched to it. */
export function peekId(body: string): ClientId | undefined {
  return clientIdOf(peekObject(body)?.id);
}

async function close(
  deps: Deps,
  sender: FrameSender,
  reason: 'token_revoked' | 'token_expired' | 'blocked',
): Promise<FrameReply> {
  await closeSocket(deps, { connectionId: sender.connectionId, username: sender.username }, reason);
  return undefined;
}

/**
 * Why the sender may no longer post, read again beside the room's members (same round
 * trip): a block, a revocation or a closed socket recorded since the frame's first read
 * stops the fan-out, so nothing goes out once an admin's block has answered; so does a
 * grant to a `private:` room deleted or lowered to `reader` since.
 */
async function stopReason(
  deps: Deps,
  conn: SocketRow,
  now: number,
  room?: Room,
): Promise<CloseReason | RoomDenial | undefined> {
  const subject = { claims: conn, username: conn.username };
  const grant = room && needsGrant(room) ? [grantRef(deps, room.name, conn.username)] : [];
  const [row, ...accessRows] = await batchGet(
    deps.db,
    [
      { table: deps.tables.connections, key: socketRowKey(conn.connectionId) },
      ...accessRefs(deps, subject),
      ...grant,
    ],
    { consistent: true },
  );
  const state = accessStateFrom(subject, accessRows, now);
  if (!row || state.revoked) return 'token_revoked';
  if (state.userBlock) return 'blocked';
  if (room) return postDenial(room, conn, grant.length > 0 ? accessOf(accessRows.at(-1)) : undefined);
  return undefined;
}

const isCloseReason = (r: CloseReason | RoomDenial): r is CloseReason =>
  r === 'token_revoked' || r === 'blocked' || r === 'token_expired';

/**
 * Refuses a room frame with `forbidden`, audited as `room.denied`. A socket whose row still
 * lists a `private:` room it has no grant to (a revocation raced its join) leaves it here.
 */
async function deny(deps: Deps, conn: SocketRow, room: Room, denial: RoomDenial): Promise<never> {
  deps.audit('warn', 'room.denied', {
    username: conn.username,
    sub: conn.sub,
    connectionId: conn.connectionId,
    room: room.name,
    reason: denial,
  });
  if (denial === 'no_grant' && conn.rooms.includes(room.name))
    await leaveRoom(deps, conn.connectionId, room.name);
  throw new AppError('forbidden', denialMessage(room, denial));
}

/** A socket whose row went while one of its frames was handled: closed at the gateway if still open. */
async function closeForgotten(deps: Deps, connectionId: string): Promise<FrameReply> {
  await deps.api?.close(connectionId).catch(() => false);
  return undefined;
}

async function blockForViolations(deps: Deps, sender: FrameSender, violations: number): Promise<void> {
  const { blockDurationS } = deps.settings;
  await putBlock(deps, blockId.user(sender.username), blockDurationS, 'rate_limit_violations', 'system');
  deps.audit('warn', 'user.blocked', {
    username: sender.username,
    sub: sender.sub,
    reason: 'rate_limit_violations',
    count: violations,
    durationS: blockDurationS,
    by: 'system',
  });
  await closeUserSockets(deps, sender.username, 'blocked');
}

function withId(frame: Record<string, unknown>, id: ClientId | undefined): Record<string, unknown> {
  return id === undefined ? frame : { ...frame, id };
}

async function requireMember(deps: Deps, conn: SocketRow, room: string): Promise<Room> {
  const parsed = parseRoom(room);
  if (!conn.rooms.includes(room)) await deny(deps, conn, parsed, 'not_member');
  return parsed;
}

async function dispatch(
  deps: Deps,
  conn: SocketRow,
  m: ClientMessage,
  now: number,
  id: ClientId | undefined,
  grantOf: GrantOf,
): Promise<FrameReply> {
  switch (m.type) {
    case 'ping':
      return withId({ type: 'pong' }, id);
    case 'whoami':
      return withId(
        { type: 'identity', sub: conn.sub, username: conn.username, roles: conn.roles, exp: conn.exp },
        id,
      );
    case 'join': {
      const room = parseRoom(m.room);
      let grant = needsGrant(room) ? await grantOf(room.name) : undefined;
      const denial = joinDenial(room, conn, grant);
      if (denial) return deny(deps, conn, room, denial);
      const listed = conn.rooms.includes(m.room);
      // A private room's membership is written again even when the row lists the room: a
      // revocation racing an earlier join may have taken the membership after the row got it.
      const already = listed && !needsGrant(room);
      // The socket's own `user:` room comes on top of the rooms it may join.
      const maxRooms = MAX_ROOMS_PER_CONNECTION + (conn.rooms.includes(userRoom(conn.username)) ? 1 : 0);
      if (!listed && conn.rooms.length >= maxRooms) {
        throw new AppError('invalid_request', `a socket may be in at most ${MAX_ROOMS_PER_CONNECTION} rooms`);
      }
      // The grant, read again once the membership is stored (see grants.ts).
      const recheck = async () => {
        grant = await readGrant(deps, room.name, conn.username);
        return grant !== undefined;
      };
      const [joined, members, { position, history, recovered }] = await Promise.all([
        already
          ? 'joined'
          : joinRoom(deps, conn, m.room, {
              maxRooms,
              ...(needsGrant(room) ? { recheck } : {}),
            }),
        roomMembers(deps, m.room),
        joinHistory(deps, m.room, m, deps.clock.now()),
      ]);
      // The socket was forgotten while joining: make sure it is not left open and deaf.
      if (joined === 'gone') return closeForgotten(deps, conn.connectionId);
      if (joined === 'refused') return deny(deps, conn, room, 'no_grant');
      // The count read with the frame may be stale: the conditional write decides.
      if (joined === 'full') {
        throw new AppError('invalid_request', `a socket may be in at most ${MAX_ROOMS_PER_CONNECTION} rooms`);
      }
      const others = members.filter((x) => x.connectionId !== conn.connectionId);
      if (others.length > 0 && !listed)
        await sendToSockets(deps, others, {
          type: 'member_joined',
          room: m.room,
          username: conn.username,
        });
      // The joining socket's own row may or may not be in the Query that ran beside its write.
      const names = [...new Set([conn.username, ...members.map((x) => x.username)])].sort();
      // The reply must fit API Gateway's 128 KB message limit, measured on the whole frame
      // (members included), sealed when it will be. The oldest history goes first; a recovered
      // history keeps its oldest instead, so it stays gapless: its end short of `seq` tells the
      // client to join again from there.
      const reply = {
        type: 'joined',
        room: m.room,
        epoch: position.epoch,
        seq: position.seq,
        members: names,
        history,
        ...(recovered === undefined ? {} : { recovered }),
        ...(grant ? { access: grant } : {}),
      };
      return fitFrame(withId(reply, id), 'history', {
        encrypted: conn.messageKey !== undefined,
        drop: recovered ? 'newest' : 'oldest',
      });
    }
    case 'leave': {
      await requireMember(deps, conn, m.room);
      const [, members] = await Promise.all([
        leaveRoom(deps, conn.connectionId, m.room),
        roomMembers(deps, m.room),
      ]);
      const others = members.filter((x) => x.connectionId !== conn.connectionId);
      if (others.length > 0)
        await sendToSockets(deps, others, { type: 'member_left', room: m.room, username: conn.username });
      return withId({ type: 'left', room: m.room }, id);
    }
    case 'presence': {
      const room = await requireMember(deps, conn, m.room);
      if (needsGrant(room) && !(await grantOf(room.name))) return deny(deps, conn, room, 'no_grant');
      const members = await roomMembers(deps, m.room);
      return withId(
        { type: 'presence', room: m.room, members: [...new Set(members.map((x) => x.username))].sort() },
        id,
      );
    }
    case 'message': {
      const room = await requireMember(deps, conn, m.room);
      const denial = postDenial(room, conn, needsGrant(room) ? await grantOf(room.name) : undefined);
      if (denial) return deny(deps, conn, room, denial);
      const published = await publishMessage(
        deps,
        {
          room: m.room,
          from: conn.username,
          content: {
            ...(m.text === undefined ? {} : { text: m.text }),
            ...(m.data === undefined ? {} : { data: m.data }),
          },
          idempotencyKey: m.idempotencyKey,
        },
        () => stopReason(deps, conn, now, room),
      );
      if ('stopped' in published) {
        const { stopped } = published;
        if (!isCloseReason(stopped)) return deny(deps, conn, room, stopped);
        await closeSocket(deps, conn, stopped);
        return undefined;
      }
      return withId({ type: 'ack', ...publishedReply(published) }, id);
    }
    case 'refresh_token': {
      const claims = await verifyAccessToken(deps, m.token);
      if (claims.sub !== conn.sub) throw new AppError('invalid_token', 'the new token is for another user');
      const denial = accessDenial(await readAccessState(deps, { claims }));
      if (denial) throw new AppError('invalid_token', denial.message);
      if (!(await updateSocketToken(deps, conn.connectionId, claims))) {
        throw new AppError('invalid_token', 'this socket is closed');
      }
      return withId({ type: 'token_refreshed', exp: claims.exp }, id);
    }
    case 'encrypted':
      throw new AppError('invalid_request', 'an encrypted frame cannot hold another');
  }
}
