import type { FetchLike } from './http.ts';

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

/** `WebSocket.OPEN`. */
export const OPEN = 1;

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

/** The options with every default filled in. */
export type ClientSettings = Required<
  Omit<ClientOptions, 'WebSocket' | 'createSocket' | 'fetch' | 'refreshMarginS'>
> & { refreshMarginS: number | undefined };

const DEFAULT_PING_MS = 5 * 60_000;

export function settingsOf(options: ClientOptions): ClientSettings {
  return {
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
}

/** How sockets are made: `createSocket`, else the `WebSocket` class given or the global one. */
export function socketFactory(options: ClientOptions): (url: string, protocols: string[]) => WebSocketLike {
  const Ctor = options.WebSocket ?? (globalThis.WebSocket as WebSocketConstructor | undefined);
  return (
    options.createSocket ??
    ((url, protocols) => {
      if (!Ctor) throw new TypeError('no WebSocket class: pass options.WebSocket (e.g. from the ws package)');
      return new Ctor(url, protocols) as WebSocketLike;
    })
  );
}
