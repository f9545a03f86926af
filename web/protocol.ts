/** Messages of the WebSocket API (docs/client.md, SPEC "WebSocket API"), as the client sees them. */

export type RequestId = string | number;

/** Why the server closes a socket; it says so in a `closing` frame first. */
export type ClosingReason = 'token_expired' | 'token_revoked' | 'blocked';

/** Codes of `error` frames: the server's own type. */
import type { FrameErrorCode } from '../lambdas/core/protocol.ts';

export type { FrameErrorCode };

/** A position in a room's numbering: the last message a client holds. */
export interface Since {
  epoch: string;
  seq: number;
}

export type ClientFrame =
  | { type: 'join'; room: string; history?: number; since?: Since; id?: RequestId }
  | { type: 'leave'; room: string; id?: RequestId }
  | { type: 'presence'; room: string; id?: RequestId }
  | { type: 'message'; room: string; text?: string; data?: unknown; idempotencyKey?: string; id?: RequestId }
  | { type: 'refresh_token'; token: string; id?: RequestId }
  | { type: 'whoami'; id?: RequestId }
  | { type: 'ping'; id?: RequestId };

/** A chat message as delivered to every member of its room, the sender included. */
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
/** What a grant to a `private:` room allows: `member` joins and posts, `reader` only joins and reads. */
export type Access = 'member' | 'reader';
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
export interface ErrorFrame {
  type: 'error';
  code: FrameErrorCode;
  message: string;
  id?: RequestId;
  /** Seconds, on `rate_limited`. */
  retry_after?: number;
}
export interface ClosingFrame {
  type: 'closing';
  reason: ClosingReason;
}

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

const SERVER_TYPES = new Set([
  'message',
  'joined',
  'member_joined',
  'member_left',
  'removed',
  'access_changed',
  'presence',
  'left',
  'ack',
  'token_refreshed',
  'identity',
  'pong',
  'error',
  'closing',
  'encrypted',
]);

/**
 * Room names: `[kind:]name`, the name 1-64 of `[A-Za-z0-9_.-]`; a `dm:` room names two
 * usernames (`dm:<a>+<b>`, sorted). The server holds the full rules (docs/protocol.md).
 */
export const ROOM_PATTERN =
  /^(?:(?:user|private|broadcast):)?[A-Za-z0-9_.-]{1,64}$|^dm:[a-z0-9_.-]{3,32}\+[a-z0-9_.-]{3,32}$/;

/** The kind of a room, from its name: `open` for a name without a kind. */
export type RoomKind = 'open' | 'user' | 'dm' | 'private' | 'broadcast';

export function roomKind(room: string): RoomKind {
  const kind = room.slice(0, Math.max(0, room.indexOf(':')));
  return kind === 'user' || kind === 'dm' || kind === 'private' || kind === 'broadcast' ? kind : 'open';
}

/** The direct-message room of two users: `dm:<a>+<b>`, the names sorted. */
export function dmRoom(a: string, b: string): string {
  return a < b ? `dm:${a}+${b}` : `dm:${b}+${a}`;
}

/** The room every socket of `username` is in from the moment it opens. */
export function userRoom(username: string): string {
  return `user:${username}`;
}

/**
 * Reads one text frame. Returns undefined for anything that is not a JSON object with
 * a known `type` (API Gateway's own `{"message": "Internal server error"}` frames included).
 */
export function parseServerFrame(text: string): ServerFrame | { type: 'encrypted'; jwe: string } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string' || !SERVER_TYPES.has(type)) return undefined;
  return value as ServerFrame;
}
