import type { RealtimeError } from './errors.ts';
import type {
  AccessChangedFrame,
  ChatMessage,
  ClosingReason,
  MemberJoinedFrame,
  MemberLeftFrame,
  RemovedFrame,
  ServerFrame,
} from './protocol.ts';

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Why a session ended: the client stops and will not reconnect by itself. */
export type SessionEndReason = 'logout' | 'token_revoked' | 'blocked' | 'refresh_failed';

export interface ClientEvents {
  /**
   * A chat message in a joined room (also the caller's own): once each, in `seq` order per
   * room, those missed while the socket was down included (see `rejoined`).
   */
  message: ChatMessage;
  /**
   * After a reconnect, a room was joined again from the last message held: `recovered`
   * says whether the room still had every message after it; `restored` of them were emitted.
   */
  rejoined: { room: string; recovered: boolean; restored: number };
  /**
   * The room could not say what was missed (`recovered: false`: history expired, too many
   * missed, or its numbering started over): what follows is its latest history, not a gapless one.
   */
  reset: { room: string };
  member_joined: MemberJoinedFrame;
  member_left: MemberLeftFrame;
  /** The socket is out of a `private:` room (its grant was deleted); it is not rejoined. */
  removed: RemovedFrame;
  /** The user's grant to a `private:` room changed (`reader`: it may no longer post). */
  access_changed: AccessChangedFrame;
  /** Failures nobody awaits: unmatched error frames, a failed rejoin or background refresh. */
  error: RealtimeError;
  state: { state: ConnectionState; previous: ConnectionState };
  /** The socket is open; `reconnected` when it replaces a dropped one (rooms are rejoined by then). */
  connected: { reconnected: boolean };
  /** A reconnect is scheduled in `delayMs`. */
  reconnecting: { attempt: number; delayMs: number; code?: number };
  /** A new token pair: after login and after each refresh. `expiresAt` is ms on this machine's clock. */
  token: { username: string; expiresAt: number; refreshed: boolean };
  /** The open socket now lives until `exp` (seconds, server clock): the server accepted `refresh_token`. */
  token_refreshed: { exp: number };
  /** The server announced it is closing the socket. */
  closing: { reason: ClosingReason };
  /** The session is over; log in again to go on. */
  session_ended: { reason: SessionEndReason };
  /** Every server frame, decrypted, before it is handled. */
  frame: ServerFrame;
}

/** How the client's units raise its events. */
export type Emit = <K extends keyof ClientEvents>(type: K, value: ClientEvents[K]) => void;
