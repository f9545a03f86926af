import { AppError } from './errors.ts';
import { isPrivateRoomName, parseRoom } from './rooms.ts';
import type { ClientFrame, EncryptedFrame, ErrorFrame, FrameErrorCode, RequestId, Since } from './wire.ts';

export const MAX_HISTORY = 50;
/** Idempotency keys of `message` and the HTTP publish: 1-64 characters, chosen by the client. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 64;
/** Ids echoed back to the client: short strings or safe integers. */
const MAX_ID_LENGTH = 64;

/**
 * A client frame as `parseClientMessage` returns it: one of the wire's `ClientFrame`s, its
 * `history` counted, or an encrypted frame that holds one.
 */
export type ClientMessage =
  | Exclude<ClientFrame, { type: 'join' }>
  | (Extract<ClientFrame, { type: 'join' }> & { history: number })
  | (EncryptedFrame & { id?: RequestId });

/** Epochs are opaque to clients, and ours are short and plain: anything else is not one of ours. */
const EPOCH_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

function bad(message: string): AppError {
  return new AppError('invalid_request', message);
}

/** The `id` of a frame, if it is one we can echo. */
export function clientIdOf(value: unknown): RequestId | undefined {
  if (typeof value === 'string' && value.length <= MAX_ID_LENGTH) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  return undefined;
}

/** `since: {epoch, seq}` of a join. */
export function sinceOf(value: unknown): Since {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw bad('since must be {"epoch", "seq"}');
  const { epoch, seq } = value as Record<string, unknown>;
  if (typeof epoch !== 'string' || !EPOCH_PATTERN.test(epoch))
    throw bad('since.epoch must be an epoch string');
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0)
    throw bad('since.seq must be a whole number');
  return { epoch, seq };
}

/** An `idempotencyKey`: 1-64 characters (undefined when absent). */
export function idempotencyKeyOf(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_IDEMPOTENCY_KEY_LENGTH)
    throw bad(`idempotencyKey must be a string of 1-${MAX_IDEMPOTENCY_KEY_LENGTH} characters`);
  return value;
}

function room(value: unknown): string {
  return parseRoom(value).name;
}

/**
 * The content of a message: `text` (a non-empty string), `data` (any JSON value) or both,
 * at least one. Shared by the socket's `message` and the HTTP publish.
 */
export function messageContent(m: Record<string, unknown>): { text?: string; data?: unknown } {
  const hasText = m.text !== undefined;
  const hasData = Object.hasOwn(m, 'data') && m.data !== undefined;
  if (!hasText && !hasData) throw bad('a message needs text, data or both');
  if (hasText && (typeof m.text !== 'string' || m.text.length === 0))
    throw bad('text must be a non-empty string');
  return { ...(hasText ? { text: m.text as string } : {}), ...(hasData ? { data: m.data } : {}) };
}

type FrameParser = (m: Record<string, unknown>) => ClientMessage;

function parseJoin(m: Record<string, unknown>): ClientMessage {
  let history = 0;
  if (m.history !== undefined) {
    if (typeof m.history !== 'number' || !Number.isInteger(m.history) || m.history < 0) {
      throw bad('history must be a whole number');
    }
    history = Math.min(m.history, MAX_HISTORY);
  }
  const since = m.since === undefined ? undefined : sinceOf(m.since);
  return { type: 'join', room: room(m.room), history, ...(since ? { since } : {}) };
}

function parseMessage(m: Record<string, unknown>): ClientMessage {
  const idempotencyKey = idempotencyKeyOf(m.idempotencyKey);
  return {
    type: 'message',
    room: room(m.room),
    ...messageContent(m),
    ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
  };
}

/** One parser per client message type (a Map: a `type` such as `"constructor"` is unknown, not inherited). */
const PARSERS: ReadonlyMap<unknown, FrameParser> = new Map<string, FrameParser>([
  ['join', parseJoin],
  ['leave', (m) => ({ type: 'leave', room: room(m.room) })],
  ['presence', (m) => ({ type: 'presence', room: room(m.room) })],
  ['message', parseMessage],
  [
    'refresh_token',
    (m) => {
      if (typeof m.token !== 'string' || m.token.length === 0) throw bad('token must be a string');
      return { type: 'refresh_token', token: m.token };
    },
  ],
  ['whoami', () => ({ type: 'whoami' })],
  ['ping', () => ({ type: 'ping' })],
  [
    'encrypted',
    (m) => {
      if (typeof m.jwe !== 'string' || m.jwe.length === 0) throw bad('jwe must be a compact JWE string');
      return { type: 'encrypted', jwe: m.jwe };
    },
  ],
]);

/**
 * Parses and validates one client frame. Throws `invalid_request` (an error frame
 * `bad_request`) for anything that is not exactly one of the spec's messages.
 */
export function parseClientMessage(text: string): ClientMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw bad('the frame is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw bad('the frame must be a JSON object');
  const m = value as Record<string, unknown>;
  if (m.id !== undefined && clientIdOf(m.id) === undefined)
    throw bad('id must be a string of up to 64 characters or an integer');
  const id = clientIdOf(m.id);
  const parse = PARSERS.get(m.type);
  if (!parse) {
    throw bad(
      typeof m.type === 'string'
        ? `unknown message type ${JSON.stringify(m.type.slice(0, 32))}`
        : 'type is required',
    );
  }
  const message = parse(m);
  return id === undefined ? message : { ...message, id };
}

/** What a frame says of itself before any read: see `peekFrame`. */
export interface FramePeek {
  /** A plain `{"type":"ping"}` (with or without an `id`). */
  readonly keepAlive: boolean;
  /**
   * The `private:` room it names, so that the user's grant to it is read in the frame's first
   * round trip. An encrypted frame's room is known only once it is decrypted: its grant is read then.
   */
  readonly grantRoom?: string | undefined;
  /** Its `id`, so that even the error of a frame that does not parse can be matched to it. */
  readonly id?: RequestId | undefined;
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
export function peekFrame(body: string): FramePeek {
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
export function peekId(body: string): RequestId | undefined {
  return clientIdOf(peekObject(body)?.id);
}

/** The error frame for a domain error; unknown errors become a generic `internal`. */
export function errorFrame(err: unknown, id?: RequestId): ErrorFrame {
  const frame = (code: FrameErrorCode, message: string): ErrorFrame => ({
    type: 'error',
    code,
    message,
    ...(id === undefined ? {} : { id }),
  });
  if (!(err instanceof AppError)) return frame('internal', 'internal error');
  switch (err.code) {
    case 'invalid_request':
      return frame('bad_request', err.message);
    case 'too_large':
      return frame('too_large', err.message);
    case 'forbidden':
      return frame('forbidden', err.message);
    case 'invalid_token':
    case 'token_expired':
      return frame('invalid_token', err.message);
    case 'rate_limited':
      return { ...frame('rate_limited', err.message), retry_after: err.retryAfterS ?? 1 };
    default:
      return frame('internal', 'internal error');
  }
}
