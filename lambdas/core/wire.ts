/**
 * The wire protocol, declared once for both sides (docs/protocol.md): the frames of the
 * WebSocket API each way, the codes of error frames and of HTTP error bodies, and the shape
 * of room names. The server parses client frames with it (`core/protocol.ts`) and builds its
 * replies and pushes as these types; the client (`web/protocol.ts`) re-exports it.
 *
 * Browser-safe on purpose: types and a few pure functions, no Node module, no server code,
 * since the client bundle and the published client package take this file as it is.
 */

/** The `id` of a request, echoed in its reply or error: a string of up to 64 characters or an integer. */
export type RequestId = string | number;

/** A position in a room's numbering: `join`'s `since`, the last message a client holds. */
export interface Since {
  epoch: string;
  seq: number;
}

/** What a client sends (every frame may carry an `id`). */
export type ClientFrame =
  | { type: 'join'; room: string; history?: number; since?: Since; id?: RequestId }
  | { type: 'leave'; room: string; id?: RequestId }
  | { type: 'presence'; room: string; id?: RequestId }
  | { type: 'message'; room: string; text?: string; data?: unknown; idempotencyKey?: string; id?: RequestId }
  | { type: 'refresh_token'; token: string; id?: RequestId }
  | { type: 'whoami'; id?: RequestId }
  | { type: 'ping'; id?: RequestId };

/** A frame sealed with the session's message key (compact JWE, `dir` + `A256GCM`), either way. */
export interface EncryptedFrame {
  type: 'encrypted';
  jwe: string;
}

/** A chat message as delivered to every member of its room, the sender included, and as history keeps it. */
export interface ChatMessage {
  type: 'message';
  room: string;
  from: string;
  /** The message's text, when it has one. */
  text?: string;
  /** Any JSON value the sender attached, when it did. */
  data?: unknown;
  /** Server time, milliseconds. */
  ts: number;
  messageId: string;
  /** The room's numbering: `seq` grows with every message of the room under one `epoch`. */
  epoch: string;
  seq: number;
}

/** What a grant to a `private:` room allows: `member` joins and posts, `reader` only joins and reads. */
export type Access = 'member' | 'reader';

export interface JoinedFrame {
  type: 'joined';
  room: string;
  /** The room's epoch and latest `seq` (0 before its first message). */
  epoch: string;
  seq: number;
  /** The room's latest messages, oldest first; after a join with `since`, what followed it. */
  history: ChatMessage[];
  /** Only after a join with `since`: whether `history` holds every message after it. */
  recovered?: boolean;
  /** The room's members, the joining user included (sorted, unique). */
  members?: string[];
  /** In a `private:` room, what the user's grant allows: `reader`s may not post. */
  access?: Access;
  id?: RequestId;
}
/** The socket is out of a `private:` room: its user's grant was deleted. */
export interface RemovedFrame {
  type: 'removed';
  room: string;
  reason: 'access_revoked';
}
/** The user's grant to a `private:` room changed while the socket is in it. */
export interface AccessChangedFrame {
  type: 'access_changed';
  room: string;
  access: Access;
}
export interface MemberJoinedFrame {
  type: 'member_joined';
  room: string;
  username: string;
}
export interface MemberLeftFrame {
  type: 'member_left';
  room: string;
  username: string;
}
export interface PresenceFrame {
  type: 'presence';
  room: string;
  members: string[];
  id?: RequestId;
}
export interface LeftFrame {
  type: 'left';
  room: string;
  id?: RequestId;
}
export interface AckFrame {
  type: 'ack';
  messageId?: string;
  epoch?: string;
  seq?: number;
  /** The `idempotencyKey` was used before: this is that first message, not stored or delivered again. */
  duplicate?: boolean;
  id?: RequestId;
}
export interface TokenRefreshedFrame {
  type: 'token_refreshed';
  /** The socket's new expiry, seconds since the epoch (server clock). */
  exp: number;
  id?: RequestId;
}
export interface IdentityFrame {
  type: 'identity';
  sub: string;
  username: string;
  roles: string[];
  exp: number;
  id?: RequestId;
}
export interface PongFrame {
  type: 'pong';
  id?: RequestId;
}

/** Codes of `error` frames. */
export type FrameErrorCode =
  | 'bad_request'
  | 'too_large'
  | 'forbidden'
  | 'invalid_token'
  | 'rate_limited'
  | 'internal';

export interface ErrorFrame {
  type: 'error';
  code: FrameErrorCode;
  message: string;
  id?: RequestId;
  /** Seconds, on `rate_limited`. */
  retry_after?: number;
}

/** Why the server closes a socket; it says so in a `closing` frame first. */
export type ClosingReason = 'token_expired' | 'token_revoked' | 'blocked';

export interface ClosingFrame {
  type: 'closing';
  reason: ClosingReason;
}

/** Every frame the server sends in the clear (each may also come sealed, as an `EncryptedFrame`). */
export type ServerFrame =
  | ChatMessage
  | JoinedFrame
  | MemberJoinedFrame
  | MemberLeftFrame
  | RemovedFrame
  | AccessChangedFrame
  | PresenceFrame
  | LeftFrame
  | AckFrame
  | TokenRefreshedFrame
  | IdentityFrame
  | PongFrame
  | ErrorFrame
  | ClosingFrame;

/** Every `type` the server sends, sealed or not: the compiler holds it to `ServerFrame`. */
const SERVER_FRAME_TYPES: Readonly<Record<(ServerFrame | EncryptedFrame)['type'], true>> = {
  message: true,
  joined: true,
  member_joined: true,
  member_left: true,
  removed: true,
  access_changed: true,
  presence: true,
  left: true,
  ack: true,
  token_refreshed: true,
  identity: true,
  pong: true,
  error: true,
  closing: true,
  encrypted: true,
};

/** Whether a frame's `type` is one the server sends (a frame of any other type is not one of ours). */
export function isServerFrameType(type: string): type is (ServerFrame | EncryptedFrame)['type'] {
  return Object.hasOwn(SERVER_FRAME_TYPES, type);
}

/** The reply each request gets when it succeeds. */
export interface ReplyOf {
  join: JoinedFrame;
  leave: LeftFrame;
  presence: PresenceFrame;
  message: AckFrame;
  refresh_token: TokenRefreshedFrame;
  whoami: IdentityFrame;
  ping: PongFrame;
}

/** Error codes of the HTTP API, the `error` of its error bodies. */
export type HttpErrorCode =
  | 'invalid_request'
  | 'invalid_credentials'
  | 'invalid_token'
  | 'token_expired'
  | 'forbidden'
  | 'conflict'
  | 'rate_limited'
  | 'internal'
  | 'not_found';

/** The body of every HTTP error response. */
export interface HttpErrorBody {
  error: HttpErrorCode;
  /** Safe to show; never a stack or a cause. */
  message: string;
}

/** The name part of a room (`[kind:]name`) of every kind but `dm:`: 1-64 of `[A-Za-z0-9_.-]`. */
export const ROOM_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
/** A username as stored, and so in `user:` and `dm:` rooms: lower-cased, 3-32 of `[a-z0-9_.-]`. */
export const USERNAME_PATTERN = /^[a-z0-9_.-]{3,32}$/;

const body = (pattern: RegExp): string => pattern.source.slice(1, -1);

/**
 * Room names: `[kind:]name`, the name 1-64 of `[A-Za-z0-9_.-]`; a `dm:` room names two
 * usernames (`dm:<a>+<b>`, sorted). The shape only, from the same parts the server's
 * `parseRoom` checks; the server holds the full rules (docs/protocol.md, "Rooms").
 */
export const ROOM_PATTERN = new RegExp(
  `^(?:(?:user|private|broadcast):)?${body(ROOM_NAME_PATTERN)}$|^dm:${body(USERNAME_PATTERN)}\\+${body(USERNAME_PATTERN)}$`,
);

/** The kind of a room, from its name: `open` for a name without a kind. */
export type RoomKind = 'open' | 'user' | 'dm' | 'private' | 'broadcast';

/** The kind a room name says it is (valid or not): `open` for a name without a known kind. */
export function roomKind(room: string): RoomKind {
  const kind = room.slice(0, Math.max(0, room.indexOf(':')));
  return kind === 'user' || kind === 'dm' || kind === 'private' || kind === 'broadcast' ? kind : 'open';
}

/** The direct-message room of two users: `dm:<a>+<b>`, the names sorted, whatever order they come in. */
export function dmRoom(a: string, b: string): string {
  return a < b ? `dm:${a}+${b}` : `dm:${b}+${a}`;
}

/** The room every socket of `username` is in from the moment it opens. */
export function userRoom(username: string): string {
  return `user:${username}`;
}
