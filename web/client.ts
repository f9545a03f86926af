import { backoffDelay } from './backoff.ts';
import { DeliveryTracker } from './delivery.ts';
import { Emitter } from './emitter.ts';
import { isRealtimeError, RealtimeError } from './errors.ts';
import { type FetchLike, HttpApi, type TokenPair } from './http.ts';
import type { FrameCipher } from './jwe.ts';
import {
  type AccessChangedFrame,
  type ChatMessage,
  type ClientFrame,
  type ClosingReason,
  dmRoom,
  type ErrorFrame,
  type JoinedFrame,
  type MemberJoinedFrame,
  type MemberLeftFrame,
  type PresenceFrame,
  parseServerFrame,
  type RemovedFrame,
  type ReplyOf,
  type RequestId,
  ROOM_PATTERN,
  type ServerFrame,
  type Since,
  userRoom,
} from './protocol.ts';

export type { RealtimeErrorCode } from './errors.ts';
export { isRealtimeError, RealtimeError } from './errors.ts';
export type { TokenPair } from './http.ts';
export { HttpApi } from './http.ts';
export * from './protocol.ts';

/** The part of a WebSocket the client uses: the browser's, `ws`'s, or your own. */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket class: the browser's global, or `WebSocket` from the `ws` package. */
export type WebSocketConstructor = new (url: string, protocols: string[]) => object;

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Why a session ended: the client stops and will not reconnect by itself. */
export type SessionEndReason = 'logout' | 'token_revoked' | 'blocked' | 'refresh_failed';

export interface ClientOptions {
  /** Base URL of the HTTP API (`https://….execute-api….amazonaws.com`); `''` for the page's own origin. */
  httpUrl: string;
  /** The WebSocket API's URL (`wss://….execute-api….amazonaws.com/prod`, locally `ws://localhost:3001`). */
  wsUrl: string;
  /** The WebSocket class. Default: the global one (browsers, Node ≥ 22). On Node 20 pass `ws`'s. */
  WebSocket?: WebSocketConstructor;
  /** Builds each socket yourself (e.g. `ws` with an `Origin` header); wins over `WebSocket`. */
  createSocket?: (url: string, protocols: string[]) => WebSocketLike;
  /** Default: the global `fetch`. */
  fetch?: FetchLike;
  /**
   * How the handshake carries the token: `protocol` sends it as the subprotocol
   * (`['jwt', token]`); `ticket` trades it for a single-use ticket at `POST /auth/ws-ticket`
   * and connects with `?ticket=`; `auto` (default) uses a ticket when the server has that
   * endpoint and the subprotocol otherwise.
   */
  auth?: 'auto' | 'protocol' | 'ticket';
  /** Refresh the access token automatically before it expires. Default true. */
  autoRefresh?: boolean;
  /** Seconds before expiry to refresh. Default: a fifth of the token's lifetime, at most 60 s. */
  refreshMarginS?: number;
  /**
   * Send a `ping` after this long without sending anything, so API Gateway's 10-minute
   * idle timeout never closes the socket. Pings count against the rate limit. Default
   * 5 minutes; 0 turns keep-alive off.
   */
  pingIntervalMs?: number;
  /** How long a request waits for its reply. Default 10 s. */
  requestTimeoutMs?: number;
  /** How long a handshake may take. Default 10 s. */
  connectTimeoutMs?: number;
  /** Reconnect after an unexpected close. Default true. */
  reconnect?: boolean;
  /** First reconnect delay; it doubles per failed attempt, with jitter. Default 500 ms. */
  reconnectBaseMs?: number;
  /** Longest reconnect delay. Default 30 s. */
  reconnectMaxMs?: number;
  /**
   * Messages of history asked for when a room cannot be recovered after a reconnect
   * (`recovered: false`; unseen ones are emitted after the `reset` event). Default 20.
   */
  rejoinHistory?: number;
  /**
   * How long a message that arrives after a gap in its room's numbering waits for the
   * messages before it, before the client asks the room for them (`join` with `since`). Default 1 s.
   */
  gapWaitMs?: number;
  /** Random numbers in [0, 1) for the jitter (tests pin it). Default `Math.random`. */
  random?: () => number;
}

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

/** What `send` resolves with: the message's reference in its room. */
export interface SendResult {
  messageId?: string;
  epoch?: string;
  seq?: number;
  /** The key was used before: this is the first message's reference. */
  duplicate?: boolean;
}

interface Outgoing {
  readonly frame: { type: 'message'; room: string; text?: string; data?: unknown; idempotencyKey: string };
  readonly resolve: (result: SendResult) => void;
  readonly reject: (err: RealtimeError) => void;
  sending?: boolean;
}

interface Pending {
  resolve(frame: ServerFrame): void;
  reject(err: RealtimeError): void;
  timer: ReturnType<typeof setTimeout>;
}

const OPEN = 1;
const DEFAULT_PING_MS = 5 * 60_000;
/** A socket open this long counts as a success: the next drop starts the backoff afresh. */
const STABLE_MS = 10_000;

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
  readonly #o: Required<Omit<ClientOptions, 'WebSocket' | 'createSocket' | 'fetch' | 'refreshMarginS'>> & {
    refreshMarginS: number | undefined;
  };
  readonly #createSocket: (url: string, protocols: string[]) => WebSocketLike;

  #tokens: TokenPair | undefined;
  #expiresAt = 0;
  #receivedAt = 0;
  #username = '';
  /** Loaded on demand: jose stays out of the page's bundle unless the server encrypts. */
  #cipher: Promise<FrameCipher> | undefined;
  #ticketSupported: boolean | undefined;

  #state: ConnectionState = 'idle';
  #socket: WebSocketLike | undefined;
  #wantOpen = false;
  #closingReason: ClosingReason | undefined;
  #attempt = 0;
  #openedAt = 0;
  #everOpened = false;
  readonly #rooms = new Map<string, number>();
  /** Counts `removed` frames; each room's last one, so a join can tell one that overtook its reply. */
  #removals = 0;
  readonly #removedAt = new Map<string, number>();
  readonly #pending = new Map<RequestId, Pending>();
  readonly #delivery = new DeliveryTracker();
  readonly #gapTimers = new Map<string, ReturnType<typeof setTimeout>>();
  /** Per room, the highest `seq` known when the socket dropped: the rejoin trusts its history up to there. */
  readonly #dropTargets = new Map<string, number>();
  readonly #outbox = new Map<string, Outgoing>();
  /**
   * The socket whose rooms are joined: outgoing messages wait for it, since a message sent on a
   * new socket before its rejoin answered would be refused (`forbidden`: not a member yet).
   */
  #readySocket: WebSocketLike | undefined;
  #nextId = 0;
  #inbound: Promise<void> = Promise.resolve();
  #outbound: Promise<void> = Promise.resolve();

  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setTimeout> | undefined;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #refreshing: Promise<void> | undefined;

  constructor(options: ClientOptions) {
    super();
    this.#o = {
      httpUrl: options.httpUrl,
      wsUrl: options.wsUrl,
      auth: options.auth ?? 'auto',
      autoRefresh: options.autoRefresh ?? true,
      refreshMarginS: options.refreshMarginS,
      pingIntervalMs: options.pingIntervalMs ?? DEFAULT_PING_MS,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      reconnect: options.reconnect ?? true,
      reconnectBaseMs: options.reconnectBaseMs ?? 500,
      reconnectMaxMs: options.reconnectMaxMs ?? 30_000,
      rejoinHistory: options.rejoinHistory ?? 20,
      gapWaitMs: options.gapWaitMs ?? 1000,
      random: options.random ?? Math.random,
    };
    this.http = new HttpApi(options.httpUrl, options.fetch);
    const Ctor = options.WebSocket ?? (globalThis.WebSocket as WebSocketConstructor | undefined);
    this.#createSocket =
      options.createSocket ??
      ((url, protocols) => {
        if (!Ctor)
          throw new TypeError('no WebSocket class: pass options.WebSocket (e.g. from the ws package)');
        return new Ctor(url, protocols) as WebSocketLike;
      });
    globalThis.addEventListener?.('online', this.#onOnline);
  }

  /** The connection's state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** The logged-in user's name, or `''`. */
  get username(): string {
    return this.#username;
  }

  /** The logged-in user's roles, from its access token (`[]` when logged out). */
  get roles(): string[] {
    const roles = this.#tokens ? claimsOf(this.#tokens.access_token).roles : undefined;
    return Array.isArray(roles) ? roles.filter((r): r is string => typeof r === 'string') : [];
  }

  /** The room that every socket of the logged-in user is in without joining (`user:<username>`). */
  get userRoom(): string {
    return this.#username ? userRoom(this.#username) : '';
  }

  /** When the access token expires, in ms on this machine's clock (0 when logged out). */
  get expiresAt(): number {
    return this.#expiresAt;
  }

  /** The current access token, for calls of your own to the HTTP API. */
  get accessToken(): string | undefined {
    return this.#tokens?.access_token;
  }

  /** The rooms the client is in (and rejoins after a reconnect). */
  get rooms(): string[] {
    return [...this.#rooms.keys()];
  }

  /** Whether frames are end-to-end encrypted with the session's `message_key`. */
  get encrypted(): boolean {
    return this.#cipher !== undefined;
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
    if (!this.#tokens) throw new RealtimeError('not_logged_in', 'log in first');
    if (this.#state === 'open' || this.#state === 'connecting') return;
    this.#wantOpen = true;
    this.#attempt = 0;
    this.#setState('connecting');
    try {
      await this.#open();
    } catch (err) {
      this.#setState('closed');
      this.#wantOpen = false;
      throw await this.#explainHandshakeFailure(err);
    }
  }

  /** Closes the socket and stops reconnecting; the session stays logged in (and refreshed). */
  disconnect(): void {
    this.#wantOpen = false;
    clearTimeout(this.#reconnectTimer);
    const socket = this.#socket;
    this.#detach(new RealtimeError('disconnected', 'disconnected by the client'));
    this.#failOutbox(new RealtimeError('disconnected', 'disconnected by the client'));
    socket?.close(1000, 'bye');
    if (this.#state !== 'idle') this.#setState('closed');
  }

  /** `POST /auth/logout` (the token, its refresh family and their sockets are revoked), then stops. */
  async logout(): Promise<void> {
    const token = this.#tokens?.access_token;
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
    this.#refreshing ??= this.#doRefresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  /** Joins a room; the reply carries up to `history` (≤ 50) of its latest messages, oldest first. */
  async join(room: string, options: { history?: number } = {}): Promise<JoinedFrame> {
    checkRoom(room);
    const before = this.#removals;
    const joined = await this.request({ type: 'join', room, history: options.history ?? 0 });
    // A `removed` may overtake the `joined` of a join that raced the revocation: it is final.
    if ((this.#removedAt.get(room) ?? 0) > before)
      throw new RealtimeError('forbidden', `removed from ${room}: access revoked`);
    this.#rooms.set(room, options.history ?? 0);
    this.#delivery.joined(room, joined);
    this.#watchGap(room);
    return joined;
  }

  async leave(room: string): Promise<void> {
    checkRoom(room);
    await this.request({ type: 'leave', room });
    this.#dropRoom(room);
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
    if (!this.#username) throw new RealtimeError('not_logged_in', 'log in first');
    return this.join(dmRoom(this.#username, username.toLowerCase()), options);
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
    if (this.#state === 'idle' || this.#state === 'closed') {
      return Promise.reject(new RealtimeError('not_connected', 'not connected'));
    }
    const key = options.idempotencyKey ?? randomKey();
    if (this.#outbox.has(key)) {
      return Promise.reject(
        new RealtimeError('bad_request', 'a message with this idempotencyKey is on its way'),
      );
    }
    const body = typeof content === 'string' ? { text: content } : content;
    return new Promise<SendResult>((resolve, reject) => {
      const entry: Outgoing = {
        frame: { type: 'message', room, ...body, idempotencyKey: key },
        resolve,
        reject,
      };
      this.#outbox.set(key, entry);
      this.#transmit(entry);
    });
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
    const socket = this.#socket;
    if (this.#state !== 'open' || !socket || socket.readyState !== OPEN) {
      return Promise.reject(
        new RealtimeError(
          'not_connected',
          this.#state === 'reconnecting' ? 'reconnecting; try again in a moment' : 'not connected',
        ),
      );
    }
    const id = `c${++this.#nextId}`;
    return new Promise<ReplyOf[F['type']]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new RealtimeError('timeout', `no reply to ${frame.type} within ${this.#o.requestTimeoutMs} ms`),
        );
      }, this.#o.requestTimeoutMs);
      this.#pending.set(id, { resolve: resolve as (f: ServerFrame) => void, reject, timer });
      this.#sendFrame(socket, { ...frame, id });
    });
  }

  // --- tokens ---

  #setTokens(pair: TokenPair, refreshed: boolean): void {
    this.#tokens = pair;
    this.#receivedAt = Date.now();
    this.#expiresAt = this.#receivedAt + pair.expires_in * 1000;
    const username = claimsOf(pair.access_token).username;
    if (typeof username === 'string') this.#username = username;
    if (pair.message_key) {
      if (!/^[A-Za-z0-9_-]{43}$/.test(pair.message_key))
        throw new TypeError('message_key must be 256 bits, base64url');
      const key = pair.message_key;
      this.#cipher = import('./jwe.ts').then(({ FrameCipher }) => new FrameCipher(key));
    } else if (!refreshed) this.#cipher = undefined;
    this.#scheduleRefresh();
    this.emit('token', { username: this.#username, expiresAt: this.#expiresAt, refreshed });
  }

  #marginMs(): number {
    const lifetimeS = this.#tokens?.expires_in ?? 0;
    return (this.#o.refreshMarginS ?? Math.min(60, lifetimeS / 5)) * 1000;
  }

  #scheduleRefresh(delayMs?: number): void {
    clearTimeout(this.#refreshTimer);
    if (!this.#o.autoRefresh || !this.#tokens) return;
    const due = delayMs ?? Math.max(1000, this.#expiresAt - this.#marginMs() - Date.now());
    this.#refreshTimer = setTimeout(() => {
      this.refresh().catch((err: unknown) => this.emit('error', asRealtimeError(err)));
    }, due);
  }

  async #doRefresh(): Promise<void> {
    const tokens = this.#tokens;
    if (!tokens) throw new RealtimeError('not_logged_in', 'log in first');
    let pair: TokenPair;
    try {
      pair = await this.http.refresh(tokens.refresh_token);
    } catch (err) {
      const e = asRealtimeError(err);
      if (e.status === 401 || e.status === 403) {
        // The refresh token is spent, revoked or its user blocked: nothing left to try.
        this.#endSession('refresh_failed');
      } else if (this.#tokens === tokens) {
        // Network trouble or a 5xx: try again while the token still has time left.
        this.#scheduleRefresh(Math.max(1000, Math.min(30_000, (this.#expiresAt - Date.now()) / 2)));
      }
      throw e;
    }
    if (this.#tokens !== tokens) return; // logged out meanwhile
    this.#setTokens(pair, true);
    await this.#refreshSocket();
  }

  /** Hands the new token to the open socket; if it will not take it, a fresh socket will. */
  async #refreshSocket(): Promise<void> {
    if (this.#state !== 'open') return; // the next handshake uses the new token
    const token = this.#tokens?.access_token;
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
            if (this.#tokens?.access_token === token) void this.#refreshSocket();
          },
          (e.retryAfterS ?? 1) * 1000,
        );
      } else if (e.code !== 'not_connected' && e.code !== 'disconnected') {
        this.#reopen();
      }
      throw e;
    }
  }

  #endSession(reason: SessionEndReason): void {
    const had = this.#tokens !== undefined || this.#wantOpen;
    this.#wantOpen = false;
    clearTimeout(this.#reconnectTimer);
    const socket = this.#socket;
    this.#detach(new RealtimeError('disconnected', 'the session ended'));
    this.#failOutbox(new RealtimeError('disconnected', 'the session ended'));
    socket?.close(1000, 'session ended');
    this.#clearSession();
    if (this.#state !== 'idle') this.#setState('closed');
    if (had) this.emit('session_ended', { reason });
  }

  #clearSession(): void {
    this.#delivery.clear();
    clearTimeout(this.#refreshTimer);
    this.#tokens = undefined;
    this.#cipher = undefined;
    this.#expiresAt = 0;
    this.#username = '';
    this.#rooms.clear();
  }

  // --- the socket ---

  async #handshakeTarget(): Promise<{ url: string; protocols: string[] }> {
    const tokens = this.#tokens;
    if (!tokens) throw new RealtimeError('not_logged_in', 'log in first');
    const mode = this.#o.auth;
    if (mode === 'ticket' || (mode === 'auto' && this.#ticketSupported !== false)) {
      try {
        const { ticket } = await this.http.wsTicket(tokens.access_token);
        this.#ticketSupported = true;
        const url = new URL(this.#o.wsUrl);
        url.searchParams.set('ticket', ticket);
        return { url: url.toString(), protocols: [] };
      } catch (err) {
        // No ticket endpoint on this server: the subprotocol it is, from now on.
        if (mode === 'ticket' || !isRealtimeError(err, 'not_found')) throw err;
        this.#ticketSupported = false;
      }
    }
    return { url: this.#o.wsUrl, protocols: ['jwt', tokens.access_token] };
  }

  async #open(): Promise<void> {
    if (this.#tokens && this.#expiresAt - Date.now() < Math.min(this.#marginMs(), 5000) + 1000) {
      await this.refresh();
    }
    const { url, protocols } = await this.#handshakeTarget();
    const socket = await this.#dial(url, protocols);
    if (!this.#wantOpen) {
      socket.close(1000, 'bye');
      return;
    }
    this.#socket = socket;
    this.#closingReason = undefined;
    socket.onmessage = (event) => {
      if (this.#socket === socket) this.#receive(event.data);
    };
    socket.onclose = (event) => {
      if (this.#socket === socket) this.#dropped(event.code);
    };
    socket.onerror = () => {};
    const reconnected = this.#everOpened;
    this.#everOpened = true;
    this.#openedAt = Date.now();
    this.#setState('open');
    this.#armPing();
    if (reconnected) await this.#rejoin();
    if (this.#socket !== socket) return;
    this.#readySocket = socket;
    for (const entry of this.#outbox.values()) this.#transmit(entry);
    this.emit('connected', { reconnected });
  }

  #dial(url: string, protocols: string[]): Promise<WebSocketLike> {
    return new Promise<WebSocketLike>((resolve, reject) => {
      let socket: WebSocketLike;
      try {
        socket = this.#createSocket(url, protocols);
      } catch (err) {
        reject(asRealtimeError(err));
        return;
      }
      const timer = setTimeout(() => {
        socket.onclose = null;
        socket.close();
        reject(new RealtimeError('timeout', 'the WebSocket handshake timed out'));
      }, this.#o.connectTimeoutMs);
      socket.onerror = () => {};
      socket.onopen = () => {
        clearTimeout(timer);
        resolve(socket);
      };
      socket.onclose = (event) => {
        clearTimeout(timer);
        reject(
          new RealtimeError('disconnected', `the WebSocket handshake failed (close code ${event.code})`),
        );
      };
    });
  }

  /** Browsers hide a refused handshake's status: ask the HTTP API what it thinks of the token. */
  async #explainHandshakeFailure(err: unknown): Promise<RealtimeError> {
    const e = asRealtimeError(err);
    if (e.code !== 'disconnected' || !this.#tokens) return e;
    try {
      await this.http.me(this.#tokens.access_token);
    } catch (meErr) {
      return asRealtimeError(meErr);
    }
    return new RealtimeError(
      'forbidden',
      'the WebSocket handshake was refused: this page’s origin may not be allowed, the user or IP blocked, or too many sockets open',
    );
  }

  #sendFrame(socket: WebSocketLike, frame: ClientFrame): void {
    const cipher = this.#cipher;
    this.#armPing();
    if (!cipher) {
      socket.send(JSON.stringify(frame));
      return;
    }
    // Encryption is asynchronous: a chain keeps frames in the order they were sent.
    this.#outbound = this.#outbound
      .then(async () => {
        const jwe = await (await cipher).encrypt(JSON.stringify(frame));
        if (socket.readyState !== OPEN) return;
        socket.send(
          JSON.stringify({ type: 'encrypted', jwe, ...(frame.id === undefined ? {} : { id: frame.id }) }),
        );
      })
      .catch((err: unknown) => this.emit('error', asRealtimeError(err)));
  }

  #receive(data: unknown): void {
    const text = typeof data === 'string' ? data : new TextDecoder().decode(data as Uint8Array);
    const frame = parseServerFrame(text);
    if (!frame) return;
    if (frame.type !== 'encrypted' && !this.#cipher) {
      this.#handle(frame);
      return;
    }
    const cipher = this.#cipher;
    this.#inbound = this.#inbound.then(async () => {
      if (frame.type !== 'encrypted') {
        this.#handle(frame);
        return;
      }
      let inner: ReturnType<typeof parseServerFrame>;
      try {
        if (!cipher) throw new Error('no message_key');
        inner = parseServerFrame(await (await cipher).decrypt(frame.jwe));
      } catch {
        this.emit('error', new RealtimeError('decryption_failed', 'an encrypted frame could not be read'));
        return;
      }
      if (inner && inner.type !== 'encrypted') this.#handle(inner);
    });
  }

  #handle(frame: ServerFrame): void {
    this.emit('frame', frame);
    const id = 'id' in frame ? frame.id : undefined;
    const pending = id === undefined ? undefined : this.#pending.get(id);
    if (pending && id !== undefined) {
      this.#pending.delete(id);
      clearTimeout(pending.timer);
      if (frame.type === 'error') pending.reject(frameError(frame));
      else pending.resolve(frame);
      return;
    }
    switch (frame.type) {
      case 'message':
        for (const m of this.#delivery.receive(frame)) this.emit('message', m);
        this.#watchGap(frame.room);
        return;
      case 'member_joined':
        this.emit('member_joined', frame);
        return;
      case 'member_left':
        this.emit('member_left', frame);
        return;
      case 'removed':
        // Out for good: a rejoin after a reconnect would be refused.
        this.#dropRoom(frame.room);
        this.#removedAt.set(frame.room, ++this.#removals);
        this.emit('removed', frame);
        return;
      case 'access_changed':
        this.emit('access_changed', frame);
        return;
      case 'closing':
        this.#closingReason = frame.reason;
        this.emit('closing', { reason: frame.reason });
        return;
      case 'error':
        this.emit('error', frameError(frame));
        return;
      default:
        return; // a late reply whose request timed out
    }
  }

  /** Stops tracking a room: not rejoined, no gap watched. */
  #dropRoom(room: string): void {
    this.#rooms.delete(room);
    this.#delivery.forget(room);
    this.#stopGapTimer(room);
  }

  async #rejoin(): Promise<void> {
    await Promise.all(
      [...this.#rooms].map(async ([room]) => {
        const since = this.#delivery.position(room);
        try {
          const joined = await this.request({
            type: 'join',
            room,
            history: this.#o.rejoinHistory,
            ...(since ? { since } : {}),
          });
          // Removed (a `removed` that overtook this reply) or left meanwhile: not tracked again.
          if (!this.#rooms.has(room)) return;
          const recovered = joined.recovered === true;
          const restored = this.#applyJoin(room, joined, since, this.#dropTargets.get(room) ?? 0);
          if (!recovered || !this.#delivery.waiting(room)) {
            this.emit('rejoined', { room, recovered, restored });
            return;
          }
          // Messages numbered by the time of the join but not in its history may still be on
          // their way into the store: the room is asked again once they have had time.
          this.#stopGapTimer(room);
          const cutoff = this.#delivery.target(room);
          void new Promise((resolve) => setTimeout(resolve, this.#o.gapWaitMs))
            .then(() => this.#catchUp(room, cutoff))
            .then((more) => this.emit('rejoined', { room, recovered, restored: restored + more }));
        } catch (err) {
          const e = asRealtimeError(err);
          // Refused for good (a grant deleted while the socket was down): out, as on `removed`.
          if (e.code === 'forbidden') this.#dropRoom(room);
          this.emit(
            'error',
            new RealtimeError(e.code, `could not rejoin ${room}: ${e.message}`, e.status, e.retryAfterS),
          );
        }
      }),
    );
    this.#dropTargets.clear();
  }

  /** Hands a join's messages to the application; returns how many. */
  #applyJoin(room: string, joined: JoinedFrame, since: Since | undefined, cutoff: number): number {
    const { emit, reset } = this.#delivery.joined(room, joined, since, cutoff);
    if (reset) this.emit('reset', { room });
    for (const m of emit) this.emit('message', m);
    this.#watchGap(room);
    return emit.length;
  }

  /**
   * A room with a gap in its numbering waits `gapWaitMs` for the missing messages, then asks
   * for them; numbers known by then and still missing were skipped (never stored).
   */
  #watchGap(room: string): void {
    if (!this.#delivery.waiting(room)) {
      this.#stopGapTimer(room);
      return;
    }
    if (this.#gapTimers.has(room)) return;
    const cutoff = this.#delivery.target(room);
    this.#gapTimers.set(
      room,
      setTimeout(() => {
        this.#gapTimers.delete(room);
        void this.#catchUp(room, cutoff);
      }, this.#o.gapWaitMs),
    );
  }

  #stopGapTimer(room: string): void {
    clearTimeout(this.#gapTimers.get(room));
    this.#gapTimers.delete(room);
  }

  /** Asks the room for what follows the last message held; returns how many messages that emitted. */
  async #catchUp(room: string, cutoff: number): Promise<number> {
    const since = this.#delivery.position(room);
    // While the socket is down, the rejoin after the reconnect does this.
    if (!since || !this.#rooms.has(room) || this.#state !== 'open') return 0;
    try {
      const joined = await this.request({ type: 'join', room, since, history: this.#o.rejoinHistory });
      return this.#rooms.has(room) ? this.#applyJoin(room, joined, since, cutoff) : 0;
    } catch (err) {
      const e = asRealtimeError(err);
      if (e.code === 'disconnected' || e.code === 'not_connected') return 0;
      if (e.code === 'rate_limited') {
        setTimeout(() => this.#watchGap(room), (e.retryAfterS ?? 1) * 1000);
        return 0;
      }
      this.emit('error', new RealtimeError(e.code, `could not catch up in ${room}: ${e.message}`, e.status));
      return 0;
    }
  }

  /** Sends one outgoing message if the socket is open and its rooms rejoined; otherwise that socket's opening does. */
  #transmit(entry: Outgoing): void {
    if (entry.sending || this.#state !== 'open' || this.#readySocket !== this.#socket) return;
    entry.sending = true;
    const key = entry.frame.idempotencyKey;
    this.request(entry.frame).then(
      (ack) => {
        if (this.#outbox.get(key) !== entry) return;
        this.#outbox.delete(key);
        entry.resolve({
          ...(ack.messageId === undefined ? {} : { messageId: ack.messageId }),
          ...(ack.epoch === undefined ? {} : { epoch: ack.epoch }),
          ...(ack.seq === undefined ? {} : { seq: ack.seq }),
          ...(ack.duplicate ? { duplicate: true } : {}),
        });
      },
      (err: unknown) => {
        entry.sending = false;
        if (this.#outbox.get(key) !== entry) return;
        const e = asRealtimeError(err);
        // Sent again, under the same key, once there is a socket: the server keeps it to one.
        if (e.code === 'disconnected' || e.code === 'not_connected') return;
        if (e.code === 'timeout') return this.#transmit(entry);
        // Any error frame (`rate_limited` included: the person decides whether to wait) ends it.
        this.#outbox.delete(key);
        entry.reject(e);
      },
    );
  }

  /** The unacknowledged messages will not be sent: the client stopped. */
  #failOutbox(reason: RealtimeError): void {
    const entries = [...this.#outbox.values()];
    this.#outbox.clear();
    for (const entry of entries) entry.reject(reason);
  }

  /** Keep-alive: a `ping` after `pingIntervalMs` without sending; no reply in time means the socket is dead. */
  #armPing(): void {
    clearTimeout(this.#pingTimer);
    if (this.#o.pingIntervalMs <= 0 || this.#state !== 'open') return;
    this.#pingTimer = setTimeout(() => {
      this.ping().catch((err: unknown) => {
        if (isRealtimeError(err, 'timeout')) this.#reopen();
      });
    }, this.#o.pingIntervalMs);
  }

  /** Drops the current socket as if the server had, so that the reconnect logic takes over. */
  #reopen(): void {
    const socket = this.#socket;
    if (!socket) return;
    socket.close(4000, 'reopen');
    this.#dropped(4000);
  }

  /** Forgets the socket: pending requests fail, keep-alive stops. */
  #detach(reason: RealtimeError): void {
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket) {
      socket.onmessage = null;
      socket.onclose = null;
    }
    clearTimeout(this.#pingTimer);
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(reason);
    }
    this.#pending.clear();
  }

  #dropped(code: number): void {
    for (const room of this.#rooms.keys()) {
      this.#dropTargets.set(room, Math.max(this.#dropTargets.get(room) ?? 0, this.#delivery.target(room)));
      this.#stopGapTimer(room);
    }
    const reason = this.#closingReason;
    this.#closingReason = undefined;
    this.#detach(new RealtimeError('disconnected', `the socket closed (code ${code})`));
    if (!this.#wantOpen) {
      this.#setState('closed');
      return;
    }
    if (reason === 'blocked' || reason === 'token_revoked') {
      this.#endSession(reason);
      return;
    }
    if (!this.#o.reconnect) {
      this.#wantOpen = false;
      this.#setState('closed');
      return;
    }
    // A socket cut soon after opening does not reset the backoff, or a flapping network
    // (or a server refusing us right after the handshake) would be hammered.
    if (Date.now() - this.#openedAt >= STABLE_MS) this.#attempt = 0;
    // The server's clock says the token has expired: refresh before the next handshake.
    this.#scheduleReconnect(code, reason === 'token_expired');
  }

  /** The browser says the network is back: no point waiting out the backoff. */
  readonly #onOnline = (): void => this.reconnectNow();

  /** While reconnecting, tries now instead of waiting out the backoff (a "retry now" button). */
  reconnectNow(): void {
    if (this.#state !== 'reconnecting') return;
    clearTimeout(this.#reconnectTimer);
    void this.#reconnect(false);
  }

  #scheduleReconnect(code: number | undefined, refreshFirst: boolean): void {
    const attempt = ++this.#attempt;
    const delayMs = backoffDelay(attempt, this.#o.reconnectBaseMs, this.#o.reconnectMaxMs, this.#o.random);
    this.#setState('reconnecting');
    this.emit('reconnecting', { attempt, delayMs, ...(code === undefined ? {} : { code }) });
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => {
      void this.#reconnect(refreshFirst);
    }, delayMs);
  }

  async #reconnect(refreshFirst: boolean): Promise<void> {
    if (!this.#wantOpen) return;
    try {
      // After a failed handshake, ask the HTTP API why: an expired token is refreshed, a
      // refused session ends the loop instead of knocking forever.
      if (refreshFirst) await this.refresh();
      else if (this.#attempt > 1 && this.#tokens) {
        await this.http.me(this.#tokens.access_token).catch(async (err: unknown) => {
          if (asRealtimeError(err).status === 401) await this.refresh();
          else throw err;
        });
      }
      if (!this.#wantOpen) return;
      this.#setState('connecting');
      await this.#open();
    } catch (err) {
      if (!this.#wantOpen) return;
      const e = asRealtimeError(err);
      // Expected while the network or the server is away, or while a token needs refreshing.
      const quiet =
        e.code === 'disconnected' || e.code === 'timeout' || e.code === 'network' || e.status === 401;
      if (!quiet) this.emit('error', e);
      this.#scheduleReconnect(undefined, e.status === 401);
    }
  }

  #setState(state: ConnectionState): void {
    const previous = this.#state;
    if (previous === state) return;
    this.#state = state;
    this.emit('state', { state, previous });
  }
}

/** A JWT's claims, unverified: the server verifies tokens, the client only reads its own name. */
function claimsOf(token: string): Record<string, unknown> {
  try {
    const b64 = (token.split('.')[1] ?? '').replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
    return typeof claims === 'object' && claims !== null ? (claims as Record<string, unknown>) : {};
  } catch {
    return {};
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

function frameError(frame: ErrorFrame): RealtimeError {
  return new RealtimeError(frame.code, frame.message, undefined, frame.retry_after);
}

function asRealtimeError(err: unknown): RealtimeError {
  if (err instanceof RealtimeError) return err;
  return new RealtimeError('internal', err instanceof Error ? err.message : String(err));
}
