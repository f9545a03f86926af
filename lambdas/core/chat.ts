import { accessDenial, readAccessState } from './access.ts';
import { nowS } from './clock.ts';
import type { Deps } from './deps.ts';
import { AppError } from './errors.ts';
import { decryptFrame, encryptFrame } from './frame-crypto.ts';
import { fitFrame } from './frame-size.ts';
import { readGrant } from './grants.ts';
import { joinRoom, leaveRoom } from './memberships.ts';
import { type ClientMessage, errorFrame, parseClientMessage, peekFrame, peekId } from './protocol.ts';
import { publishedReply, publishMessage } from './publish.ts';
import { countFrame, enforceRateLimit } from './rate-limit.ts';
import { type JoinHistory, joinHistory } from './recovery.ts';
import { type Member, roomMembers } from './room-members.ts';
import {
  type Access,
  denialMessage,
  joinDenial,
  needsGrant,
  parseRoom,
  postDenial,
  type Room,
  type RoomDenial,
  userRoom,
} from './rooms.ts';
import { readSocketAccess } from './socket-access.ts';
import { type SocketRow, updateSocketToken } from './socket-rows.ts';
import { closeSocket, sendToSockets } from './sockets.ts';
import { verifyAccessToken } from './tokens.ts';
import type {
  ClosingReason,
  EncryptedFrame,
  MemberJoinedFrame,
  MemberLeftFrame,
  ReplyOf,
  RequestId,
  ServerFrame,
} from './wire.ts';

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

/** What the caller gets back on its own socket (the route response), if anything: its request's reply, sealed when it came sealed. */
export type FrameReply = ReplyOf[keyof ReplyOf] | EncryptedFrame | undefined;

/** The user's grant to a `private:` room: read with the frame's first rows when it names one, else on demand. */
type GrantOf = (room: string) => Promise<Access | undefined>;

/** One frame being handled: the socket as its row says, the frame's time and `id`. */
interface FrameContext {
  readonly deps: Deps;
  readonly conn: SocketRow;
  readonly now: number;
  readonly id: RequestId | undefined;
  readonly grantOf: GrantOf;
}

/** A request, by its type (an encrypted frame is opened before it is dispatched). */
type RequestFrame<K extends keyof ReplyOf = keyof ReplyOf> = Extract<ClientMessage, { type: K }>;

/**
 * Handles one client frame. Round trip 1, in parallel: the user's rate-limit counter
 * (one atomic ADD shared by all of the user's sockets) and one BatchGetItem for the
 * live connection row, the token's revocations, the user's block and, for a frame naming
 * a `private:` room, the user's grant to it. A chat message then needs one more before
 * fan-out (the room's first page of members, a Query, beside its `seq` update and the
 * sender's re-read), two with an `idempotencyKey` (its conditional write).
 */
export async function handleFrame(deps: Deps, sender: FrameSender, body: string): Promise<FrameReply> {
  const now = nowS(deps.clock);
  // The frame is parsed once here for what must be known before any read; parseClientMessage validates it later.
  const peek = peekFrame(body);
  const socket = { connectionId: sender.connectionId, username: sender.username, claims: sender };
  const read = (consistent: boolean) =>
    readSocketAccess(deps, socket, peek.grantRoom, { consistent, nowSeconds: now });
  // Every frame but a keep-alive reads its rows strongly consistent: a frame read with a stale
  // view could act for a token revoked or a user blocked a moment ago. A `ping` reads eventually
  // consistent (half the read units): a stale view that lets it pass gives nothing but a pong
  // (no room, no member, no message), the revoking path closes the socket itself, and the next
  // other frame reads strongly. A stale view that refuses it (a row written at $connect or a
  // refresh not yet seen) is read again strongly before the socket is closed on it.
  const [counted, first] = await Promise.all([countFrame(deps, sender.sub, now), read(!peek.keepAlive)]);
  const seen = first.closeReason && peek.keepAlive ? await read(true) : first;
  const conn = seen.row;
  if (seen.closeReason || !conn) {
    await closeSocket(deps, sender, seen.closeReason ?? 'token_revoked');
    return undefined;
  }
  const grantOf: GrantOf = (room) =>
    room === peek.grantRoom ? Promise.resolve(seen.grant) : readGrant(deps, room, conn.username);

  if ((await enforceRateLimit(deps, sender, counted, now)) === 'blocked') return undefined;
  if (Buffer.byteLength(body) > deps.settings.maxMessageBytes) {
    throw new AppError('too_large', `frames are limited to ${deps.settings.maxMessageBytes} bytes`);
  }
  const message = parseClientMessage(body);
  const frame: FrameContext = { deps, conn, now, id: peek.id, grantOf };
  if (message.type === 'encrypted') return handleEncrypted(frame, message.jwe);
  return dispatch(frame, message);
}

/**
 * `{"type":"encrypted","jwe"}`: decrypts with the socket's session key, handles the
 * inner message like any other, and encrypts the reply (errors included) the same way.
 */
async function handleEncrypted(frame: FrameContext, jwe: string): Promise<EncryptedFrame | undefined> {
  const key = frame.conn.messageKey;
  if (!key) throw new AppError('invalid_request', 'message encryption is not enabled');
  const inner = await decryptFrame(key, jwe, frame.deps.settings.maxMessageBytes);
  const id = peekId(inner);
  let answer: ServerFrame | undefined;
  try {
    const message = parseClientMessage(inner);
    if (message.type === 'encrypted')
      throw new AppError('invalid_request', 'an encrypted frame cannot hold another');
    answer = await dispatch({ ...frame, id }, message);
  } catch (err) {
    if (!(err instanceof AppError) || err.code === 'internal' || err.code === 'unavailable') throw err;
    answer = errorFrame(err, id);
  }
  return answer ? await encryptFrame(key, answer) : undefined;
}

/** Runs one request; each type's handler answers with that type's reply (`ReplyOf`). */
async function dispatch(frame: FrameContext, m: RequestFrame): Promise<ReplyOf[keyof ReplyOf] | undefined> {
  switch (m.type) {
    case 'ping':
      return withId<ReplyOf['ping']>({ type: 'pong' }, frame.id);
    case 'whoami':
      return identity(frame);
    case 'join':
      return join(frame, m);
    case 'leave':
      return leave(frame, m);
    case 'presence':
      return presence(frame, m);
    case 'message':
      return post(frame, m);
    case 'refresh_token':
      return refreshToken(frame, m);
  }
}

function withId<T extends { id?: RequestId }>(frame: T, id: RequestId | undefined): T {
  return id === undefined ? frame : { ...frame, id };
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
  room: Room,
): Promise<{ close: ClosingReason } | { deny: RoomDenial } | undefined> {
  const socket = { connectionId: conn.connectionId, username: conn.username, claims: conn };
  const grantRoom = needsGrant(room) ? room.name : undefined;
  const seen = await readSocketAccess(deps, socket, grantRoom, { consistent: true, nowSeconds: now });
  if (seen.closeReason) return { close: seen.closeReason };
  const denial = postDenial(room, conn, seen.grant);
  return denial ? { deny: denial } : undefined;
}

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
async function closeForgotten(deps: Deps, connectionId: string): Promise<undefined> {
  await deps.api?.close(connectionId).catch(() => false);
  return undefined;
}

async function requireMember(deps: Deps, conn: SocketRow, room: string): Promise<Room> {
  const parsed = parseRoom(room);
  if (!conn.rooms.includes(room)) await deny(deps, conn, parsed, 'not_member');
  return parsed;
}

/** Tells the room's other sockets that this one joined or left. */
async function tellOthers(
  deps: Deps,
  conn: SocketRow,
  members: readonly Member[],
  frame: MemberJoinedFrame | MemberLeftFrame,
): Promise<void> {
  const others = members.filter((x) => x.connectionId !== conn.connectionId);
  if (others.length > 0) await sendToSockets(deps, others, frame);
}

function tooManyRooms(): AppError {
  return new AppError('invalid_request', `a socket may be in at most ${MAX_ROOMS_PER_CONNECTION} rooms`);
}

function identity({ conn, id }: FrameContext): ReplyOf['whoami'] {
  return withId<ReplyOf['whoami']>(
    { type: 'identity', sub: conn.sub, username: conn.username, roles: [...conn.roles], exp: conn.exp },
    id,
  );
}

async function join(frame: FrameContext, m: RequestFrame<'join'>): Promise<ReplyOf['join'] | undefined> {
  const { deps, conn } = frame;
  const room = parseRoom(m.room);
  let grant = needsGrant(room) ? await frame.grantOf(room.name) : undefined;
  const denial = joinDenial(room, conn, grant);
  if (denial) return deny(deps, conn, room, denial);
  const listed = conn.rooms.includes(m.room);
  // A private room's membership is written again even when the row lists the room: a
  // revocation racing an earlier join may have taken the membership after the row got it.
  const already = listed && !needsGrant(room);
  // The socket's own `user:` room comes on top of the rooms it may join.
  const maxRooms = MAX_ROOMS_PER_CONNECTION + (conn.rooms.includes(userRoom(conn.username)) ? 1 : 0);
  if (!listed && conn.rooms.length >= maxRooms) throw tooManyRooms();
  // The grant, read again once the membership is stored (see grants.ts).
  const recheck = async () => {
    grant = await readGrant(deps, room.name, conn.username);
    return grant !== undefined;
  };
  const [joined, members, messages] = await Promise.all([
    already ? 'joined' : joinRoom(deps, conn, m.room, { maxRooms, ...(needsGrant(room) ? { recheck } : {}) }),
    roomMembers(deps, m.room),
    joinHistory(deps, m.room, m, deps.clock.now()),
  ]);
  // The socket was forgotten while joining: make sure it is not left open and deaf.
  if (joined === 'gone') return closeForgotten(deps, conn.connectionId);
  if (joined === 'refused') return deny(deps, conn, room, 'no_grant');
  // The count read with the frame may be stale: the conditional write decides.
  if (joined === 'full') throw tooManyRooms();
  if (!listed)
    await tellOthers(deps, conn, members, { type: 'member_joined', room: m.room, username: conn.username });
  return joinedReply(frame, m.room, members, messages, grant);
}

/**
 * The `joined` reply. It must fit API Gateway's 128 KB message limit, measured on the whole
 * frame (members included), sealed when it will be. The oldest history goes first; a recovered
 * history keeps its oldest instead, so it stays gapless: its end short of `seq` tells the
 * client to join again from there.
 */
function joinedReply(
  { conn, id }: FrameContext,
  room: string,
  members: readonly Member[],
  { position, history, recovered }: JoinHistory,
  grant: Access | undefined,
): ReplyOf['join'] {
  // The joining socket's own row may or may not be in the Query that ran beside its write.
  const names = [...new Set([conn.username, ...members.map((x) => x.username)])].sort();
  const reply: ReplyOf['join'] = {
    type: 'joined',
    room,
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

async function leave(frame: FrameContext, m: RequestFrame<'leave'>): Promise<ReplyOf['leave']> {
  const { deps, conn } = frame;
  await requireMember(deps, conn, m.room);
  const [, members] = await Promise.all([
    leaveRoom(deps, conn.connectionId, m.room),
    roomMembers(deps, m.room),
  ]);
  await tellOthers(deps, conn, members, { type: 'member_left', room: m.room, username: conn.username });
  return withId<ReplyOf['leave']>({ type: 'left', room: m.room }, frame.id);
}

async function presence(frame: FrameContext, m: RequestFrame<'presence'>): Promise<ReplyOf['presence']> {
  const { deps, conn } = frame;
  const room = await requireMember(deps, conn, m.room);
  if (needsGrant(room) && !(await frame.grantOf(room.name))) return deny(deps, conn, room, 'no_grant');
  const members = await roomMembers(deps, m.room);
  const names = [...new Set(members.map((x) => x.username))].sort();
  return withId<ReplyOf['presence']>({ type: 'presence', room: m.room, members: names }, frame.id);
}

async function post(
  frame: FrameContext,
  m: RequestFrame<'message'>,
): Promise<ReplyOf['message'] | undefined> {
  const { deps, conn } = frame;
  const room = await requireMember(deps, conn, m.room);
  const denial = postDenial(room, conn, needsGrant(room) ? await frame.grantOf(room.name) : undefined);
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
    () => stopReason(deps, conn, frame.now, room),
  );
  if ('stopped' in published) {
    const { stopped } = published;
    if ('deny' in stopped) return deny(deps, conn, room, stopped.deny);
    await closeSocket(deps, conn, stopped.close);
    return undefined;
  }
  return withId<ReplyOf['message']>({ type: 'ack', ...publishedReply(published) }, frame.id);
}

async function refreshToken(
  frame: FrameContext,
  m: RequestFrame<'refresh_token'>,
): Promise<ReplyOf['refresh_token']> {
  const { deps, conn } = frame;
  const claims = await verifyAccessToken(deps, m.token);
  if (claims.sub !== conn.sub) throw new AppError('invalid_token', 'the new token is for another user');
  const denial = accessDenial(await readAccessState(deps, { claims }));
  if (denial) throw new AppError('invalid_token', denial.message);
  if (!(await updateSocketToken(deps, conn.connectionId, claims))) {
    throw new AppError('invalid_token', 'this socket is closed');
  }
  return withId<ReplyOf['refresh_token']>({ type: 'token_refreshed', exp: claims.exp }, frame.id);
}
