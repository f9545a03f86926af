/**
 * Messages of the WebSocket API (docs/client.md, docs/protocol.md), as the client sees them.
 * They are declared once, for the server and the client alike, in `lambdas/core/wire.ts`
 * (browser-safe: types and pure functions only); this module re-exports them and reads frames.
 */
import { type EncryptedFrame, isServerFrameType, type ServerFrame } from '../lambdas/core/wire.ts';

export type {
  Access,
  AccessChangedFrame,
  AckFrame,
  ChatMessage,
  ClientFrame,
  ClosingFrame,
  ClosingReason,
  EncryptedFrame,
  ErrorFrame,
  FrameErrorCode,
  IdentityFrame,
  JoinedFrame,
  LeftFrame,
  MemberJoinedFrame,
  MemberLeftFrame,
  PongFrame,
  PresenceFrame,
  RemovedFrame,
  ReplyOf,
  RequestId,
  RoomKind,
  ServerFrame,
  Since,
  TokenRefreshedFrame,
} from '../lambdas/core/wire.ts';
export { dmRoom, ROOM_PATTERN, roomKind, userRoom } from '../lambdas/core/wire.ts';

/**
 * Reads one text frame. Returns undefined for anything that is not a JSON object with
 * a known `type` (API Gateway's own `{"message": "Internal server error"}` frames included).
 */
export function parseServerFrame(text: string): ServerFrame | EncryptedFrame | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string' || !isServerFrameType(type)) return undefined;
  return value as ServerFrame | EncryptedFrame;
}
