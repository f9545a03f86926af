import { Emitter } from './emitter.ts';
import { Encryption } from './encryption.ts';
import { RealtimeError } from './errors.ts';
import type { ClientEvents, ConnectionState, Emit, SessionEndReason } from './events.ts';
import { asRealtimeError, frameError } from './failure.ts';
import { HttpApi, type TokenPair } from './http.ts';
import { Link, type LinkHost } from './link.ts';
import {
  type ClientOptions,
  type ClientSettings,
  OPEN,
  settingsOf,
  socketFactory,
  type WebSocketLike,
} from './options.ts';
import { Outbox, type SendResult } from './outbox.ts';
import {
  type ClientFrame,
  dmRoom,
  type JoinedFrame,
  type PresenceFrame,
  type ReplyOf,
  ROOM_PATTERN,
  type ServerFrame,
  userRoom,
} from './protocol.ts';
import { Requests } from './requests.ts';
import { Rooms } from './rooms.ts';
import { TokenSession } from './session.ts';

export type { RealtimeErrorCode } from './errors.ts';
export { isRealtimeError, RealtimeError } from './errors.ts';
export type { ClientEvents, ConnectionState, SessionEndReason } from './events.ts';
export type { TokenPair } from './http.ts';
export { HttpApi } from './http.ts';
export type { ClientOptions, WebSocketConstructor, WebSocketLike } from './options.ts';
export type { SendResult } from './outbox.ts';
export * from './protocol.ts';

/**
 * A client of the HTTP and WebSocket APIs that does the hard parts: the token in the
 * handshake, refresh before expiry (over HTTP, then `refresh_token` on the open socket),
 * keep-alive, reconnect with backoff and rejoin, request/reply matching, and the
 * server's `closing` reasons as events.
 *
 * @example
 * const client = new RealtimeClient({ httpUrl: '', wsUrl: 'wss://ws.example.com/prod' });
 * await client.login('alice', 'correct horse battery staple');
 * client.on('message', (m) => console.log(`${m.from}: ${m.text}`));
 * await client.connect();
 * await client.join('lobby');
 * await client.send('lobby', 'hello');
 */
export class RealtimeClient extends Emitter<ClientEvents> {
  readonly http: HttpApi;
  readonly #o: ClientSettings;
  readonly #session: TokenSession;
  readonly #link: Link;
  readonly #requests: Requests;
  readonly #encryption: Encryption;
  readonly #rooms: Rooms;
  readonly #outbox: Outbox;
  /**
   * The socket whose rooms are joined: outgoing messages wait for it, since a message sent on a
   * new socket before its rejoin answered would be refused (`forbidden`: not a member yet).
   */
  #readySocket: WebSocketLike | undefined;

  constructor(options: ClientOptions) {
    super();
    this.#o = settingsOf(options);
    this.http = new HttpApi(options.httpUrl, options.fetch);
    const emit: Emit = (type, value) => this.emit(type, value);
    this.#requests = new Requests(this.#o.requestTimeoutMs);
    this.#encryption = new Encryption((err) => this.emit('error', err));
    this.#session = new TokenSession(this.http, this.#o, {
      adopt: (pair) => this.#setTokens(pair, true),
      refreshed: () => this.#refreshSocket(),
      refused: () => this.#endSession('refresh_failed'),
      failed: (err) => this.emit('error', err),
    });
    this.#link = new Link(this.#o, socketFactory(options), this.http, this.#linkHost(), emit);
    this.#rooms = new Rooms(this.#o, {
      request: (frame) => this.request(frame),
      isOpen: () => this.#link.state === 'open',
      emit,
    });
    this.#outbox = new Outbox({
      ready: () => this.#link.state === 'open' && this.#readySocket === this.#link.socket,
      request: (frame) => this.request(frame),
    });
    globalThis.addEventListener?.('online', this.#onOnline);
  }

  /** The connection's state. */
  get state(): ConnectionState {
    return this.#link.state;
  }

  /** The logged-in user's name, or `''`. */
  get username(): string {
    return this.#session.username;
  }

  /** The logged-in user's roles, from its access token (`[]` when logged out). */
  get roles(): string[] {
    return this.#session.roles;
  }

  /** The room that every socket of the logged-in user is in without joining (`user:<username>`). */
  get userRoom(): string {
    return this.#session.username ? userRoom(this.#session.username) : '';
  }

  /** When the access token expires, in ms on this machine's clock (0 when logged out). */
  get expiresAt(): number {
    return this.#session.expiresAt;
  }

  /** The current access token, for calls of your own to the HTTP API. */
  get accessToken(): string | undefined {
    return this.#session.accessToken;
  }

  /** The rooms the client is in (and rejoins after a reconnect). */
  get rooms(): string[] {
    return this.#rooms.names;
  }

  /** Whether frames are end-to-end encrypted with the session's `message_key`. */
  get encrypted(): boolean {
    return this.#encryption.on;
  }

  /** `POST /auth/register`. Does not log in. */
  async register(username: string, password: string): Promise<void> {
    await this.http.register(username, password);
  }

  /** `POST /auth/login`; keeps the token pair and schedules its refresh. */
  async login(username: string, password: string): Promise<void> {
    this.useTokens(await this.http.login(username, password));
  }

  /** Adopts a token pair obtained elsewhere (`/auth/token-exchange`, a stored session). */
  useTokens(pair: TokenPair): void {
    this.#setTokens(pair, false);
  }

  /**
   * Opens the socket and resolves once it is open. Rejects when the handshake fails
   * (with the HTTP API's verdict on the token when it has one); after it has opened
   * once, drops are handled by reconnecting.
   */
  async connect(): Promise<void> {
    if (!this.#session.tokens) throw new RealtimeError('not_logged_in', 'log in first');
    await this.#link.connect();
  }

  /** Closes the socket and stops reconnecting; the session stays logged in (and refreshed). */
  disconnect(): void {
    const reason = () => new RealtimeError('disconnected', 'disconnected by the client');
    this.#link.stop(reason(), 'bye', () => this.#outbox.fail(reason()));
  }

  /** `POST /auth/logout` (the token, its refresh family and their sockets are revoked), then stops. */
  async logout(): Promise<void> {
    const token = this.#session.accessToken;
    this.disconnect();
    try {
      if (token) await this.http.logout(token);
    } finally {
      this.#endSession('logout');
    }
  }

  /** Stops everything (timers, socket) without telling the server; the session is forgotten. */
  close(): void {
    this.disconnect();
    this.#clearSession();
    globalThis.removeEventListener?.('online', this.#onOnline);
  }

  /**
   * Refreshes the token pair now: `POST /auth/refresh`, then `refresh_token` on the open
   * socket so it lives on past the old expiry. Concurrent calls share one refresh, since a
   * refresh token presented twice revokes its whole family.
   */
  refresh(): Promise<void> {
    return this.#session.refresh();
  }

  /** Joins a room; the reply carries up to `history` (≤ 50) of its latest messages, oldest first. */
  async join(room: string, options: { history?: number } = {}): Promise<JoinedFrame> {
    checkRoom(room);
    return this.#rooms.join(room, options.history ?? 0);
  }

  async leave(room: string): Promise<void> {
    checkRoom(room);
    await this.request({ type: 'leave', room });
    this.#rooms.drop(room);
  }

  /** The usernames in a room (members only). */
  async presence(room: string): Promise<string[]> {
    checkRoom(room);
    const reply: PresenceFrame = await this.request({ type: 'presence', room });
    return reply.members;
  }

  /**
   * Joins the direct-message room with `username` (`dm:<a>+<b>`, only the two of you may join).
   *
   * @example const dm = await client.dm('bob'); await client.send(dm.room, 'hi bob');
   */
  dm(username: string, options: { history?: number } = {}): Promise<JoinedFrame> {
    if (!this.#session.username) throw new RealtimeError('not_logged_in', 'log in first');
    return this.join(dmRoom(this.#session.username, username.toLowerCase()), options);
  }

  /**
   * Sends a chat message (a text, or `{ text?, data? }` where `data` is any JSON value) under
   * an idempotency key (a fresh one unless given) and resolves on the server's `ack`; the
   * message itself arrives as a `message` event. Until it is acknowledged it is sent again,
   * with the same key, after every reconnect (and after a timeout), so the room gets it once.
   * Sent while reconnecting, it waits for the socket. Rejects on an error frame
   * (`rate_limited` with `retryAfterS`), and on `disconnect()` or a session's end.
   */
  send(
    room: string,
    content: string | { text?: string; data?: unknown },
    options: { idempotencyKey?: string } = {},
  ): Promise<SendResult> {
    checkRoom(room);
    if (this.state === 'idle' || this.state === 'closed') {
      return Promise.reject(new RealtimeError('not_connected', 'not connected'));
    }
    const body = typeof content === 'string' ? { text: content } : content;
    const idempotencyKey = options.idempotencyKey ?? randomKey();
    return this.#outbox.add({ type: 'message', room, ...body, idempotencyKey });
  }

  /** Messages sent and not yet acknowledged: they go out again after a reconnect. */
  get unacknowledged(): number {
    return this.#outbox.size;
  }

  whoami(): Promise<ReplyOf['whoami']> {
    return this.request({ type: 'whoami' });
  }

  ping(): Promise<ReplyOf['ping']> {
    return this.request({ type: 'ping' });
  }

  /**
   * Sends any client frame with a fresh `id` and resolves with the reply that echoes it;
   * an `error` reply rejects with its code (`rate_limited` carries `retryAfterS`).
   */
  request<F extends ClientFrame>(frame: F): Promise<ReplyOf[F['type']]> {
    const socket = this.#link.socket;
    if (this.state !== 'open' || !socket || socket.readyState !== OPEN) {
      return Promise.reject(
        new RealtimeError(
          'not_connected',
          this.state === 'reconnecting' ? 'reconnecting; try again in a moment' : 'not connected',
        ),
      );
    }
    return this.#requests.send(frame, (withId) => {
      this.#link.armPing();
      this.#encryption.send(socket, withId);
    });
  }

  /** While reconnecting, tries now instead of waiting out the backoff (a "retry now" button). */
  reconnectNow(): void {
    this.#link.reconnectNow();
  }

  /** The browser says the network is back: no point waiting out the backoff. */
  readonly #onOnline = (): void => this.reconnectNow();

  #linkHost(): LinkHost {
    return {
      accessToken: () => this.#session.accessToken,
      prepare: async () => {
        if (this.#session.nearExpiry()) await this.refresh();
      },
      refresh: () => this.refresh(),
      opened: (socket, reconnected) => this.#opened(socket, reconnected),
      message: (data) => this.#encryption.receive(data, (frame) => this.#handle(frame)),
      dropping: () => this.#rooms.socketDropped(),
      detached: (reason) => this.#requests.failAll(reason),
      ended: (reason) => this.#endSession(reason),
      ping: () => this.ping(),
    };
  }

  #setTokens(pair: TokenPair, refreshed: boolean): void {
    this.#session.set(pair);
    this.#encryption.useKey(pair.message_key, refreshed);
    this.#session.scheduleRefresh();
    const { username, expiresAt } = this.#session;
    this.emit('token', { username, expiresAt, refreshed });
  }

  /** Hands the new token to the open socket; if it will not take it, a fresh socket will. */
  async #refreshSocket(): Promise<void> {
    if (this.state !== 'open') return; // the next handshake uses the new token
    const token = this.#session.accessToken;
    if (!token) return;
    try {
      const reply = await this.request({ type: 'refresh_token', token });
      this.emit('token_refreshed', { exp: reply.exp });
    } catch (err) {
      const e = asRealtimeError(err);
      if (e.code === 'rate_limited') {
        // The socket still has its old expiry; try again once the window allows.
        setTimeout(
          () => {
            if (this.#session.accessToken === token) void this.#refreshSocket();
          },
          (e.retryAfterS ?? 1) * 1000,
        );
      } else if (e.code !== 'not_connected' && e.code !== 'disconnected') {
        this.#link.reopen();
      }
      throw e;
    }
  }

  #endSession(reason: SessionEndReason): void {
    const had = this.#session.tokens !== undefined || this.#link.wanted;
    const ended = () => new RealtimeError('disconnected', 'the session ended');
    this.#link.stop(ended(), 'session ended', () => {
      this.#outbox.fail(ended());
      this.#clearSession();
    });
    if (had) this.emit('session_ended', { reason });
  }

  #clearSession(): void {
    this.#rooms.clear();
    this.#session.clear();
    this.#encryption.clear();
  }

  /** A new socket is open: after a reconnect its rooms are rejoined before messages go out. */
  async #opened(socket: WebSocketLike, reconnected: boolean): Promise<void> {
    if (reconnected) await this.#rooms.rejoin();
    if (this.#link.socket !== socket) return;
    this.#readySocket = socket;
    this.#outbox.flush();
    this.emit('connected', { reconnected });
  }

  #handle(frame: ServerFrame): void {
    this.emit('frame', frame);
    if (this.#requests.settle(frame)) return;
    switch (frame.type) {
      case 'message':
        this.#rooms.receive(frame);
        return;
      case 'removed':
        this.#rooms.removed(frame.room);
        this.emit('removed', frame);
        return;
      case 'member_joined':
      case 'member_left':
      case 'access_changed':
        this.emit(frame.type, frame);
        return;
      case 'closing':
        this.#link.closing(frame.reason);
        this.emit('closing', { reason: frame.reason });
        return;
      case 'error':
        this.emit('error', frameError(frame));
        return;
      default:
        return; // a late reply whose request timed out
    }
  }
}

/** A fresh idempotency key: 128 random bits (getRandomValues works outside secure contexts too). */
function randomKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function checkRoom(room: string): void {
  if (!ROOM_PATTERN.test(room)) {
    throw new RealtimeError(
      'bad_request',
      'room names are [kind:]name, the name 1-64 of A-Z, a-z, 0-9, _ . -',
    );
  }
}
