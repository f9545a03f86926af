import { backoffDelay } from './backoff.ts';
import { isRealtimeError, RealtimeError } from './errors.ts';
import type { ConnectionState, Emit } from './events.ts';
import { asRealtimeError } from './failure.ts';
import type { HttpApi } from './http.ts';
import type { ClientSettings, WebSocketLike } from './options.ts';
import type { ClosingReason } from './protocol.ts';

/** A socket open this long counts as a success: the next drop starts the backoff afresh. */
const STABLE_MS = 10_000;

/** What the link asks of the client around a socket's life. */
export interface LinkHost {
  accessToken(): string | undefined;
  /** Before each handshake: a token about to expire is refreshed first. */
  prepare(): Promise<void>;
  refresh(): Promise<void>;
  /** The socket is open and the state `open`: rooms are rejoined, waiting messages sent. */
  opened(socket: WebSocketLike, reconnected: boolean): Promise<void>;
  message(data: unknown): void;
  /** The socket dropped; called before its requests fail. */
  dropping(): void;
  /** The socket is forgotten: its pending requests fail with `reason`. */
  detached(reason: RealtimeError): void;
  /** The server closed the socket because the session is over. */
  ended(reason: 'blocked' | 'token_revoked'): void;
  /** A keep-alive `ping` request. */
  ping(): Promise<unknown>;
}

type LinkSettings = Pick<
  ClientSettings,
  | 'wsUrl'
  | 'auth'
  | 'connectTimeoutMs'
  | 'pingIntervalMs'
  | 'reconnect'
  | 'reconnectBaseMs'
  | 'reconnectMaxMs'
  | 'random'
>;

/**
 * The socket's life cycle: the handshake (ticket or subprotocol), the state, keep-alive,
 * and reconnecting with backoff after a drop, until it is stopped or the session ends.
 */
export class Link {
  #state: ConnectionState = 'idle';
  #socket: WebSocketLike | undefined;
  #wantOpen = false;
  #closingReason: ClosingReason | undefined;
  #attempt = 0;
  #openedAt = 0;
  #everOpened = false;
  #ticketSupported: boolean | undefined;
  #pingTimer: ReturnType<typeof setTimeout> | undefined;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly settings: LinkSettings,
    readonly createSocket: (url: string, protocols: string[]) => WebSocketLike,
    readonly http: HttpApi,
    readonly host: LinkHost,
    readonly emit: Emit,
  ) {}

  get state(): ConnectionState {
    return this.#state;
  }

  get socket(): WebSocketLike | undefined {
    return this.#socket;
  }

  /** Whether the socket is wanted open (connected, or reconnecting). */
  get wanted(): boolean {
    return this.#wantOpen;
  }

  /** Opens the socket; a failed handshake says why (with the HTTP API's verdict on the token). */
  async connect(): Promise<void> {
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

  /** Closes the socket for good: its requests fail with `reason`, then `cleanup` runs. */
  stop(reason: RealtimeError, closeReason: string, cleanup?: () => void): void {
    this.#wantOpen = false;
    clearTimeout(this.#reconnectTimer);
    const socket = this.#socket;
    this.#detach(reason);
    cleanup?.();
    socket?.close(1000, closeReason);
    if (this.#state !== 'idle') this.#setState('closed');
  }

  /** The server announced why it will close the socket. */
  closing(reason: ClosingReason): void {
    this.#closingReason = reason;
  }

  /** Keep-alive: a `ping` after `pingIntervalMs` without sending; no reply in time means the socket is dead. */
  armPing(): void {
    clearTimeout(this.#pingTimer);
    if (this.settings.pingIntervalMs <= 0 || this.#state !== 'open') return;
    this.#pingTimer = setTimeout(() => {
      this.host.ping().catch((err: unknown) => {
        if (isRealtimeError(err, 'timeout')) this.reopen();
      });
    }, this.settings.pingIntervalMs);
  }

  /** Drops the current socket as if the server had, so that the reconnect logic takes over. */
  reopen(): void {
    const socket = this.#socket;
    if (!socket) return;
    socket.close(4000, 'reopen');
    this.#dropped(4000);
  }

  /** While reconnecting, tries now instead of waiting out the backoff. */
  reconnectNow(): void {
    if (this.#state !== 'reconnecting') return;
    clearTimeout(this.#reconnectTimer);
    void this.#reconnect(false);
  }

  async #handshakeTarget(): Promise<{ url: string; protocols: string[] }> {
    const token = this.host.accessToken();
    if (!token) throw new RealtimeError('not_logged_in', 'log in first');
    const mode = this.settings.auth;
    if (mode === 'ticket' || (mode === 'auto' && this.#ticketSupported !== false)) {
      try {
        const { ticket } = await this.http.wsTicket(token);
        this.#ticketSupported = true;
        const url = new URL(this.settings.wsUrl);
        url.searchParams.set('ticket', ticket);
        return { url: url.toString(), protocols: [] };
      } catch (err) {
        // No ticket endpoint on this server: the subprotocol it is, from now on.
        if (mode === 'ticket' || !isRealtimeError(err, 'not_found')) throw err;
        this.#ticketSupported = false;
      }
    }
    return { url: this.settings.wsUrl, protocols: ['jwt', token] };
  }

  async #open(): Promise<void> {
    await this.host.prepare();
    const { url, protocols } = await this.#handshakeTarget();
    const socket = await this.#dial(url, protocols);
    if (!this.#wantOpen) {
      socket.close(1000, 'bye');
      return;
    }
    this.#socket = socket;
    this.#closingReason = undefined;
    socket.onmessage = (event) => {
      if (this.#socket === socket) this.host.message(event.data);
    };
    socket.onclose = (event) => {
      if (this.#socket === socket) this.#dropped(event.code);
    };
    socket.onerror = () => {};
    const reconnected = this.#everOpened;
    this.#everOpened = true;
    this.#openedAt = Date.now();
    this.#setState('open');
    this.armPing();
    await this.host.opened(socket, reconnected);
  }

  #dial(url: string, protocols: string[]): Promise<WebSocketLike> {
    return new Promise<WebSocketLike>((resolve, reject) => {
      let socket: WebSocketLike;
      try {
        socket = this.createSocket(url, protocols);
      } catch (err) {
        reject(asRealtimeError(err));
        return;
      }
      const timer = setTimeout(() => {
        socket.onclose = null;
        socket.close();
        reject(new RealtimeError('timeout', 'the WebSocket handshake timed out'));
      }, this.settings.connectTimeoutMs);
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
    const token = this.host.accessToken();
    if (e.code !== 'disconnected' || !token) return e;
    try {
      await this.http.me(token);
    } catch (meErr) {
      return asRealtimeError(meErr);
    }
    return new RealtimeError(
      'forbidden',
      'the WebSocket handshake was refused: this page’s origin may not be allowed, the user or IP blocked, or too many sockets open',
    );
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
    this.host.detached(reason);
  }

  #dropped(code: number): void {
    this.host.dropping();
    const reason = this.#closingReason;
    this.#closingReason = undefined;
    this.#detach(new RealtimeError('disconnected', `the socket closed (code ${code})`));
    if (!this.#wantOpen) {
      this.#setState('closed');
      return;
    }
    if (reason === 'blocked' || reason === 'token_revoked') {
      this.host.ended(reason);
      return;
    }
    if (!this.settings.reconnect) {
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

  #scheduleReconnect(code: number | undefined, refreshFirst: boolean): void {
    const attempt = ++this.#attempt;
    const { reconnectBaseMs, reconnectMaxMs, random } = this.settings;
    const delayMs = backoffDelay(attempt, reconnectBaseMs, reconnectMaxMs, random);
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
      const token = this.host.accessToken();
      if (refreshFirst) await this.host.refresh();
      else if (this.#attempt > 1 && token) {
        await this.http.me(token).catch(async (err: unknown) => {
          if (asRealtimeError(err).status === 401) await this.host.refresh();
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
