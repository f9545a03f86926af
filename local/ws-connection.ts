import type { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import type { WsAuthorizerContext, WsProxyEvent } from '../lambdas/edge/ws-types.ts';
import { buildDisconnectEvent, buildMessageEvent, type ConnectionInfo, newAwsId } from './ws-events.ts';
import { createFrameWatcher } from './ws-frames.ts';
import type { WsRouteHandlers } from './ws-gateway.ts';
import type { ManagedConnection } from './ws-management.ts';

export interface CloseStatus {
  code: number;
  reason: string;
}

/** One open socket of the gateway, from its upgrade to its `$disconnect`. */
interface OpenSocket {
  info: ConnectionInfo;
  authorizer: WsAuthorizerContext | undefined;
  socket: WebSocket;
  /** The last frame from the client: `LastActiveAt` of GetConnection. */
  lastActiveAt: number;
  /** The last frame either way: what the idle timeout measures. */
  lastTrafficAt: number;
  closing: boolean;
  /** Set when the gateway, not the client, ends the connection. */
  cause?: CloseStatus;
  timers: { idle?: NodeJS.Timeout; maxAge?: NodeJS.Timeout };
  closed: Promise<void>;
}

export interface LifecycleOptions {
  readonly routes: Pick<WsRouteHandlers, 'default' | 'disconnect'>;
  readonly stageVariables: Record<string, string>;
  /** Sends a `$default` result's `body` back to the caller (a route response). */
  readonly routeResponse: boolean;
  readonly maxFrameBytes: number;
  readonly idleTimeoutMs: number;
  readonly maxConnectionMs: number;
  readonly log: (line: Record<string, unknown>) => void;
  /** Keeps a running handler in view, so that closing the gateway can wait for it. */
  readonly track: (work: Promise<unknown>) => void;
}

export const GOING_AWAY = 'Going away';
const GOING_AWAY_STATUS: CloseStatus = { code: 1001, reason: GOING_AWAY };
const BINARY_OPCODE = 0x2;
const UNSUPPORTED_DATA = 'Unsupported data';

/**
 * The life cycle of the gateway's open sockets, as `ws`'s `WebSocket` is to its server's
 * `handleUpgrade`: frames become `$default` events, the idle and two-hour limits and the
 * frame rules close sockets as API Gateway does, and every end fires one `$disconnect`.
 */
export class ConnectionLifecycle {
  private readonly live = new Map<string, OpenSocket>();

  constructor(private readonly options: LifecycleOptions) {}

  get size(): number {
    return this.live.size;
  }

  /** What `@connections` may see and do with an open socket; nothing for a closing or unknown one. */
  lookup(connectionId: string): ManagedConnection | undefined {
    const conn = this.live.get(connectionId);
    if (!conn || conn.closing || conn.socket.readyState !== conn.socket.OPEN) return undefined;
    return {
      connectedAt: conn.info.connectedAt,
      lastActiveAt: conn.lastActiveAt,
      identity: { ...conn.info.identity },
      send: (data) => this.sendData(conn, data, false),
      disconnect: () => this.closeBy(conn, { code: 1000, reason: 'Connection Closed Normally' }, ''),
    };
  }

  /** Takes over an upgraded socket: watches its frames, routes its messages, arms its timers. */
  open(
    ws: WebSocket,
    socket: Duplex,
    info: ConnectionInfo,
    authorizer: WsAuthorizerContext | undefined,
  ): void {
    let markClosed = () => {};
    const conn: OpenSocket = {
      info,
      authorizer,
      socket: ws,
      lastActiveAt: info.connectedAt,
      lastTrafficAt: info.connectedAt,
      closing: false,
      timers: {},
      closed: new Promise<void>((resolve) => {
        markClosed = resolve;
      }),
    };
    this.live.set(info.connectionId, conn);

    socket.prependListener('data', this.frameWatcher(conn));
    ws.on('message', (data: RawData, isBinary: boolean) => this.onMessage(conn, toBuffer(data), isBinary));
    ws.on('error', (error: Error & { code?: string }) => this.onProtocolError(conn, error));
    ws.on('close', (code: number, reason: Buffer) => {
      this.onClose(conn, code, reason);
      markClosed();
    });
    this.armTimers(conn);
  }

  /**
   * Closes every socket with 1001, waits `graceMs` for the clients' close frames, then cuts
   * off the rest; resolves once each has had its `$disconnect` fired.
   */
  async closeAll(graceMs: number): Promise<void> {
    const live = [...this.live.values()];
    for (const conn of live) this.closeBy(conn, GOING_AWAY_STATUS, GOING_AWAY);
    const allClosed = Promise.all(live.map((conn) => conn.closed));
    await Promise.race([allClosed, delay(graceMs)]);
    for (const conn of live) conn.socket.terminate();
    await allClosed;
  }

  /** Invokes `$disconnect` (when routed) for a connection that ended, and logs it. */
  fireDisconnect(
    info: ConnectionInfo,
    authorizer: WsAuthorizerContext | undefined,
    status: CloseStatus,
  ): void {
    const { routes, stageVariables, log, track } = this.options;
    const requestId = newAwsId();
    const entry = {
      event: 'ws.disconnect',
      requestId,
      connectionId: info.connectionId,
      ip: info.identity.sourceIp,
      eventType: 'DISCONNECT',
      routeKey: '$disconnect',
      disconnectStatusCode: status.code,
      disconnectReason: status.reason,
    };
    const handler = routes.disconnect;
    if (!handler) {
      log({ ...entry, status: 200 });
      return;
    }
    const event = buildDisconnectEvent(info, stageVariables, authorizer, status, requestId, Date.now());
    track(
      invoke(handler, event).then((outcome) =>
        log({
          ...entry,
          status: outcome.ok ? 200 : 500,
          ...(outcome.ok ? {} : { error: messageOf(outcome.error) }),
        }),
      ),
    );
  }

  /** Sees each frame's header before `ws` reads it: the frame-size and binary rules of API Gateway. */
  private frameWatcher(conn: OpenSocket) {
    const { maxFrameBytes } = this.options;
    return createFrameWatcher((opcode, length) => {
      conn.lastActiveAt = Date.now();
      conn.lastTrafficAt = conn.lastActiveAt;
      if (opcode < 8 && length > maxFrameBytes) {
        this.closeBy(conn, { code: 1009, reason: 'Message too big' }, 'Message too big');
        return false;
      }
      // API Gateway takes no binary frames from clients: it closes the socket with 1003.
      if (opcode === BINARY_OPCODE) {
        this.closeBy(conn, { code: 1003, reason: UNSUPPORTED_DATA }, UNSUPPORTED_DATA);
        return false;
      }
      return true;
    });
  }

  private onProtocolError(conn: OpenSocket, error: Error & { code?: string }) {
    // ws has already sent its close frame; record why, for $disconnect.
    if (!conn.closing) {
      conn.closing = true;
      conn.cause = protocolErrorStatus(error.code);
    }
    this.options.log({
      event: 'ws.protocol_error',
      connectionId: conn.info.connectionId,
      error: error.code ?? error.message,
    });
  }

  private onClose(conn: OpenSocket, code: number, reason: Buffer) {
    conn.closing = true;
    clearTimeout(conn.timers.idle);
    clearTimeout(conn.timers.maxAge);
    this.live.delete(conn.info.connectionId);
    this.fireDisconnect(
      conn.info,
      conn.authorizer,
      conn.cause ?? clientStatus(code, reason.toString('utf8')),
    );
  }

  /** The idle timeout (traffic either way resets it) and the maximum connection duration. */
  private armTimers(conn: OpenSocket) {
    const { idleTimeoutMs, maxConnectionMs } = this.options;
    const checkIdle = () => {
      const idleFor = Date.now() - conn.lastTrafficAt;
      if (idleFor >= idleTimeoutMs) this.closeBy(conn, GOING_AWAY_STATUS, GOING_AWAY);
      else conn.timers.idle = setTimeout(checkIdle, idleTimeoutMs - idleFor).unref();
    };
    conn.timers.idle = setTimeout(checkIdle, idleTimeoutMs).unref();
    conn.timers.maxAge = setTimeout(
      () => this.closeBy(conn, GOING_AWAY_STATUS, GOING_AWAY),
      maxConnectionMs,
    ).unref();
  }

  private closeBy(conn: OpenSocket, status: CloseStatus, frameReason: string) {
    if (conn.closing) return;
    conn.closing = true;
    conn.cause = status;
    conn.socket.close(status.code, frameReason);
  }

  private onMessage(conn: OpenSocket, data: Buffer, isBinary: boolean) {
    conn.lastActiveAt = Date.now();
    conn.lastTrafficAt = conn.lastActiveAt;
    if (conn.closing) return;
    const ids = { requestId: newAwsId(), messageId: newAwsId() };
    const event = buildMessageEvent(
      conn.info,
      this.options.stageVariables,
      conn.authorizer,
      data,
      isBinary,
      ids,
      conn.lastActiveAt,
    );
    // Each frame is dispatched at once, without waiting for the previous one: API Gateway invokes
    // the integration concurrently and promises no order.
    this.options.track(this.dispatchMessage(conn, event, ids.requestId));
  }

  private async dispatchMessage(conn: OpenSocket, event: WsProxyEvent, requestId: string) {
    const { routes, routeResponse, log } = this.options;
    const { connectionId } = conn.info;
    const entry = {
      requestId,
      connectionId,
      ip: conn.info.identity.sourceIp,
      eventType: 'MESSAGE',
      routeKey: '$default',
    };
    if (!routes.default) {
      log({ ...entry, event: 'ws.message', status: 403, error: 'no route' });
      this.sendText(conn, gatewayMessage('Forbidden', connectionId, requestId));
      return;
    }
    const outcome = await invoke(routes.default, event);
    if (!outcome.ok) {
      log({ ...entry, event: 'ws.message', status: 500, error: messageOf(outcome.error) });
      this.sendText(conn, gatewayMessage('Internal server error', connectionId, requestId));
      return;
    }
    const result = outcome.value;
    log({
      ...entry,
      event: 'ws.message',
      status: typeof result?.statusCode === 'number' ? result.statusCode : 200,
    });
    if (routeResponse && typeof result?.body === 'string') {
      if (result.isBase64Encoded) this.sendData(conn, Buffer.from(result.body, 'base64'), true);
      else this.sendText(conn, result.body);
    }
  }

  private sendText(conn: OpenSocket, text: string) {
    this.sendData(conn, Buffer.from(text, 'utf8'), false);
  }

  // Server-sent frames count against the idle timeout too: services on API Gateway keep idle
  // sockets open with server-side keep-alives alone, up to the two-hour limit.
  private sendData(conn: OpenSocket, data: Buffer, binary: boolean) {
    if (conn.socket.readyState !== conn.socket.OPEN) return;
    conn.lastTrafficAt = Date.now();
    conn.socket.send(data, { binary });
  }
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** Runs a route handler; what it throws becomes an outcome, never an exception of the gateway. */
export async function invoke<E, T>(handler: (event: E) => Promise<T>, event: E): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await handler(event) };
  } catch (error) {
    return { ok: false, error };
  }
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** The frame API Gateway sends on its own when a route fails, spaced exactly as it does. */
function gatewayMessage(message: string, connectionId: string, requestId: string): string {
  return `{"message": "${message}", "connectionId":"${connectionId}", "requestId":"${requestId}"}`;
}

const CLIENT_REASONS: Record<number, string> = {
  1000: 'Connection Closed Normally',
  1001: GOING_AWAY,
  1005: 'Client-side close frame status not set',
  1006: 'Connection lost',
};

function clientStatus(code: number, reason: string): CloseStatus {
  return { code, reason: reason || CLIENT_REASONS[code] || '' };
}

function protocolErrorStatus(code: string | undefined): CloseStatus {
  if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return { code: 1009, reason: 'Message too big' };
  if (code === 'WS_ERR_INVALID_UTF8') return { code: 1007, reason: 'Invalid frame payload data' };
  return { code: 1002, reason: 'Protocol error' };
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
