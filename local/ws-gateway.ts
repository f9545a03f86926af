import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import type {
  AuthorizerResult,
  WsAuthorizerContext,
  WsAuthorizerEvent,
  WsProxyEvent,
  WsProxyResult,
} from '../lambdas/edge/ws-types.ts';
import type { SigningCredentials } from './sigv4.ts';
import { hasIdentity, judgeAuthorizerResult, parseIdentitySources } from './ws-authorizer.ts';
import {
  addForwardingHeaders,
  buildAuthorizerEvent,
  buildConnectEvent,
  buildDisconnectEvent,
  buildMessageEvent,
  type ConnectionInfo,
  findHeader,
  newAwsId,
  parseQuery,
  parseRawHeaders,
} from './ws-events.ts';
import { createFrameWatcher } from './ws-frames.ts';
import { createManagementApi, type ManagedConnection, type ManagementFault } from './ws-management.ts';

export type {
  AuthorizerResult,
  WsAuthorizerContext,
  WsAuthorizerEvent,
  WsIdentity,
  WsProxyEvent,
  WsProxyResult,
  WsRequestContext,
} from '../lambdas/edge/ws-types.ts';

export interface WsRouteHandlers {
  /** REQUEST authorizer of `$connect`. */
  authorizer?: (event: WsAuthorizerEvent) => Promise<AuthorizerResult>;
  connect?: (event: WsProxyEvent) => Promise<WsProxyResult | undefined>;
  default?: (event: WsProxyEvent) => Promise<WsProxyResult | undefined>;
  disconnect?: (event: WsProxyEvent) => Promise<WsProxyResult | undefined>;
}

export interface WsGatewayOptions {
  routes: WsRouteHandlers;
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 0: an ephemeral port. */
  port?: number;
  /** Default `local`. */
  stage?: string;
  /** Default `local`. */
  apiId?: string;
  /** Stage variables passed to every event. Default none. */
  stageVariables?: Record<string, string>;
  /** e.g. `route.request.header.Authorization`, `route.request.querystring.token`. Default none. */
  identitySources?: string[];
  /** With `$default` listed, a `$default` result's `body` is sent back to the caller (a route response). */
  returnResponseRoutes?: Array<'$default'>;
  /** Default 32 KiB, API Gateway's frame limit. */
  maxFrameBytes?: number;
  /** Default 128 KiB, API Gateway's message limit. */
  maxMessageBytes?: number;
  /** Default 10 minutes. */
  idleTimeoutMs?: number;
  /** Default 2 hours. */
  maxConnectionMs?: number;
  /** Access-log sink, one object per event. Query strings are never logged: they may hold tokens. */
  log?: (line: Record<string, unknown>) => void;
  /** Tests only: makes `@connections` answer 410, 429 or 500 on demand. */
  managementFault?: ManagementFault;
  /**
   * What `@connections` calls must be signed with (SigV4, service `execute-api`). Default: a
   * random secret made at start, readable only from `managementCredentials` in this process.
   */
  managementCredentials?: SigningCredentials;
  /** The region calls are signed for. Default `local`. */
  region?: string;
}

export interface WsGateway {
  /** `ws://host:port`; clients may add `/<stage>` and a query string. */
  url: string;
  /** `http://host:port/<stage>`: the `endpoint` for `ApiGatewayManagementApiClient`. */
  managementEndpoint: string;
  /** The credentials and region a management client must sign with. */
  managementCredentials: SigningCredentials;
  region: string;
  port: number;
  connectionCount(): number;
  /** Closes every socket with 1001 (each gets its `$disconnect`), then the server. */
  close(): Promise<void>;
}

interface CloseStatus {
  code: number;
  reason: string;
}

interface Connection {
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

const GOING_AWAY = 'Going away';
const BINARY_OPCODE = 0x2;
const UNSUPPORTED_DATA = 'Unsupported data';
/** How long close() waits for clients to answer the close frame before cutting them off. */
const CLOSE_GRACE_MS = 250;
/** How long close() waits for route handlers still running. */
const HANDLER_GRACE_MS = 5000;
const KEY_PATTERN = /^[+/0-9A-Za-z]{22}==$/;
const TOKEN_PATTERN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Starts a local emulation of an API Gateway WebSocket API and its `@connections` management API
 * on one port (every management call SigV4-signed, as IAM requires on AWS). Handlers are plain
 * async functions taking API Gateway's events.
 *
 * @example
 * const gw = await startWsGateway({ routes: { default: async (e) => ({ statusCode: 200 }) } });
 * const client = new ApiGatewayManagementApiClient({
 *   endpoint: gw.managementEndpoint,
 *   region: gw.region,
 *   credentials: gw.managementCredentials,
 * });
 */
export async function startWsGateway(options: WsGatewayOptions): Promise<WsGateway> {
  const host = options.host ?? '127.0.0.1';
  const stage = options.stage ?? 'local';
  const apiId = options.apiId ?? 'local';
  const stageVariables = { ...options.stageVariables };
  const identitySources = parseIdentitySources(options.identitySources ?? []);
  const routeResponse = options.returnResponseRoutes?.includes('$default') ?? false;
  const maxFrameBytes = positive('maxFrameBytes', options.maxFrameBytes ?? 32 * 1024);
  const maxMessageBytes = positive('maxMessageBytes', options.maxMessageBytes ?? 128 * 1024);
  const idleTimeoutMs = positive('idleTimeoutMs', options.idleTimeoutMs ?? 10 * 60 * 1000);
  const maxConnectionMs = positive('maxConnectionMs', options.maxConnectionMs ?? 2 * 60 * 60 * 1000);
  const { routes } = options;

  const log = (line: Record<string, unknown>) => {
    try {
      options.log?.({ time: new Date().toISOString(), ...line });
    } catch {
      // A failing log sink must not take a connection down with it.
    }
  };

  const connections = new Map<string, Connection>();
  const handshaking = new Set<Duplex>();
  const inflight = new Set<Promise<unknown>>();
  const selectedProtocol = new WeakMap<IncomingMessage, string>();
  let stopping = false;
  let port = 0;

  const track = (work: Promise<unknown>) => {
    inflight.add(work);
    void work.finally(() => inflight.delete(work));
  };

  // The subprotocol answer is only ever what $connect returned: never a default pick by ws.
  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload: maxMessageBytes,
    handleProtocols: (_offered, req) => selectedProtocol.get(req) ?? false,
  });
  wss.on('headers', (headers, req) => {
    const protocol = selectedProtocol.get(req);
    if (protocol && req.headers['sec-websocket-protocol'] === undefined) {
      headers.push(`Sec-WebSocket-Protocol: ${protocol}`);
    }
  });

  const region = options.region ?? 'local';
  const managementCredentials = options.managementCredentials ?? {
    accessKeyId: 'local',
    secretAccessKey: randomBytes(32).toString('base64url'),
  };
  const management = createManagementApi({
    stage,
    maxMessageBytes,
    credentials: managementCredentials,
    region,
    log,
    ...(options.managementFault ? { fault: options.managementFault } : {}),
    lookup: (connectionId) => {
      const conn = connections.get(connectionId);
      if (!conn || conn.closing || conn.socket.readyState !== conn.socket.OPEN) return undefined;
      return managed(conn);
    },
  });

  function managed(conn: Connection): ManagedConnection {
    return {
      connectedAt: conn.info.connectedAt,
      lastActiveAt: conn.lastActiveAt,
      identity: { ...conn.info.identity },
      send: (data) => sendData(conn, data, false),
      disconnect: () => closeBy(conn, { code: 1000, reason: 'Connection Closed Normally' }, ''),
    };
  }

  const server = createServer();
  server.on('request', (req, res) => {
    try {
      management(req, res);
    } catch (error) {
      log({ event: 'management.error', error: messageOf(error) });
      res.destroy();
    }
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    track(handshake(req, socket, head));
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    log({ event: 'http.client_error', error: error.code ?? error.message });
    if (error.code === 'ECONNRESET' || !socket.writable) socket.destroy();
    else socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });

  async function handshake(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', (error) => log({ event: 'socket.error', error: messageOf(error) }));
    if (stopping) return refuse(socket, 503, '');
    handshaking.add(socket);
    socket.once('close', () => handshaking.delete(socket));
    const now = Date.now();
    const sourceIp = normalizeIp(req.socket.remoteAddress);
    const base = { requestId: newAwsId(), ip: sourceIp, eventType: 'CONNECT', routeKey: '$connect' };
    try {
      const invalid = invalidHandshake(req);
      if (invalid) {
        log({ ...base, event: 'ws.handshake_invalid', status: 400, error: invalid });
        return refuse(socket, 400, '');
      }
      const raw = { ...parseRawHeaders(req.rawHeaders), ...parseQuery(req.url ?? '/') };
      const request = addForwardingHeaders(raw, sourceIp, port, now);
      const userAgent = findHeader(raw.headers, 'User-Agent');
      const info: ConnectionInfo = {
        connectionId: newAwsId(),
        connectedAt: now,
        identity: { sourceIp, ...(typeof userAgent === 'string' ? { userAgent } : {}) },
        domainName: req.headers.host ?? `${host}:${port}`,
        stage,
        apiId,
      };
      const entry = { ...base, connectionId: info.connectionId };

      let authorizer: WsAuthorizerContext | undefined;
      if (routes.authorizer) {
        if (!hasIdentity(identitySources, request)) {
          log({ ...entry, event: 'ws.denied', status: 401, error: 'identity source missing' });
          return refuse(socket, 401, JSON.stringify({ message: 'Unauthorized' }));
        }
        const event = buildAuthorizerEvent(info, request, stageVariables, base.requestId, now);
        const outcome = await invoke(routes.authorizer, event);
        if (!outcome.ok) {
          const unauthorized = isUnauthorized(outcome.error);
          const status = unauthorized ? 401 : 500;
          log({ ...entry, event: 'ws.denied', status, error: messageOf(outcome.error) });
          return refuse(
            socket,
            status,
            JSON.stringify({ message: unauthorized ? 'Unauthorized' : 'Internal server error' }),
          );
        }
        const verdict = judgeAuthorizerResult(outcome.value, event.methodArn);
        if (verdict.outcome === 'deny') {
          log({ ...entry, event: 'ws.denied', status: 403 });
          return refuse(socket, 403, JSON.stringify({ message: 'Forbidden' }));
        }
        if (verdict.outcome === 'invalid') {
          log({ ...entry, event: 'ws.denied', status: 500, error: `authorizer: ${verdict.reason}` });
          return refuse(socket, 500, JSON.stringify({ message: 'Internal server error' }));
        }
        authorizer = verdict.context;
      }

      if (routes.connect) {
        const event = buildConnectEvent(info, request, stageVariables, authorizer, base.requestId, now);
        const outcome = await invoke(routes.connect, event);
        // A function error reaches a WebSocket client as 502, as for Lambda proxy integrations.
        if (!outcome.ok) {
          log({ ...entry, event: 'ws.connect_failed', status: 502, error: messageOf(outcome.error) });
          return refuse(socket, 502, JSON.stringify({ message: 'Internal server error' }));
        }
        const answer = readConnectResult(outcome.value);
        if ('error' in answer) {
          log({ ...entry, event: 'ws.connect_failed', status: 502, error: answer.error });
          return refuse(socket, 502, JSON.stringify({ message: 'Internal server error' }));
        }
        if (answer.status < 200 || answer.status > 299) {
          log({ ...entry, event: 'ws.denied', status: answer.status });
          return refuse(socket, answer.status, answer.body ?? '');
        }
        if (answer.protocol) selectedProtocol.set(req, answer.protocol);
      }

      if (stopping || !socket.readable || !socket.writable) {
        socket.destroy();
        const status = stopping
          ? { code: 1001, reason: GOING_AWAY }
          : { code: 1006, reason: 'Connection lost' };
        fireDisconnect(info, authorizer, status);
        return;
      }
      let opened = false;
      wss.handleUpgrade(req, socket, head, (ws) => {
        opened = true;
        open(ws, socket, info, authorizer);
        log({ ...entry, event: 'ws.connect', status: 200 });
      });
      if (!opened) fireDisconnect(info, authorizer, { code: 1006, reason: 'Connection lost' });
    } catch (error) {
      log({ ...base, event: 'ws.handshake_error', status: 500, error: messageOf(error) });
      refuse(socket, 500, JSON.stringify({ message: 'Internal server error' }));
    } finally {
      handshaking.delete(socket);
    }
  }

  function open(
    ws: WebSocket,
    socket: Duplex,
    info: ConnectionInfo,
    authorizer: WsAuthorizerContext | undefined,
  ) {
    let markClosed = () => {};
    const conn: Connection = {
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
    connections.set(info.connectionId, conn);

    socket.prependListener(
      'data',
      createFrameWatcher((opcode, length) => {
        conn.lastActiveAt = Date.now();
        conn.lastTrafficAt = conn.lastActiveAt;
        if (opcode < 8 && length > maxFrameBytes) {
          closeBy(conn, { code: 1009, reason: 'Message too big' }, 'Message too big');
          return false;
        }
        // API Gateway takes no binary frames from clients: it closes the socket with 1003.
        if (opcode === BINARY_OPCODE) {
          closeBy(conn, { code: 1003, reason: UNSUPPORTED_DATA }, UNSUPPORTED_DATA);
          return false;
        }
        return true;
      }),
    );
    ws.on('message', (data: RawData, isBinary: boolean) => onMessage(conn, toBuffer(data), isBinary));
    ws.on('error', (error: Error & { code?: string }) => {
      // ws has already sent its close frame; record why, for $disconnect.
      if (!conn.closing) {
        conn.closing = true;
        conn.cause = protocolErrorStatus(error.code);
      }
      log({
        event: 'ws.protocol_error',
        connectionId: info.connectionId,
        error: error.code ?? error.message,
      });
    });
    ws.on('close', (code: number, reason: Buffer) => {
      conn.closing = true;
      clearTimeout(conn.timers.idle);
      clearTimeout(conn.timers.maxAge);
      connections.delete(info.connectionId);
      fireDisconnect(info, authorizer, conn.cause ?? clientStatus(code, reason.toString('utf8')));
      markClosed();
    });

    const checkIdle = () => {
      const idleFor = Date.now() - conn.lastTrafficAt;
      if (idleFor >= idleTimeoutMs) closeBy(conn, { code: 1001, reason: GOING_AWAY }, GOING_AWAY);
      else conn.timers.idle = setTimeout(checkIdle, idleTimeoutMs - idleFor).unref();
    };
    conn.timers.idle = setTimeout(checkIdle, idleTimeoutMs).unref();
    conn.timers.maxAge = setTimeout(
      () => closeBy(conn, { code: 1001, reason: GOING_AWAY }, GOING_AWAY),
      maxConnectionMs,
    ).unref();
  }

  function closeBy(conn: Connection, status: CloseStatus, frameReason: string) {
    if (conn.closing) return;
    conn.closing = true;
    conn.cause = status;
    conn.socket.close(status.code, frameReason);
  }

  function onMessage(conn: Connection, data: Buffer, isBinary: boolean) {
    conn.lastActiveAt = Date.now();
    conn.lastTrafficAt = conn.lastActiveAt;
    if (conn.closing) return;
    const ids = { requestId: newAwsId(), messageId: newAwsId() };
    const event = buildMessageEvent(
      conn.info,
      stageVariables,
      conn.authorizer,
      data,
      isBinary,
      ids,
      conn.lastActiveAt,
    );
    // Each frame is dispatched at once, without waiting for the previous one: API Gateway invokes
    // the integration concurrently and promises no order.
    track(dispatchMessage(conn, event, ids.requestId));
  }

  async function dispatchMessage(conn: Connection, event: WsProxyEvent, requestId: string) {
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
      sendText(conn, gatewayMessage('Forbidden', connectionId, requestId));
      return;
    }
    const outcome = await invoke(routes.default, event);
    if (!outcome.ok) {
      log({ ...entry, event: 'ws.message', status: 500, error: messageOf(outcome.error) });
      sendText(conn, gatewayMessage('Internal server error', connectionId, requestId));
      return;
    }
    const result = outcome.value;
    log({
      ...entry,
      event: 'ws.message',
      status: typeof result?.statusCode === 'number' ? result.statusCode : 200,
    });
    if (routeResponse && typeof result?.body === 'string') {
      if (result.isBase64Encoded) sendData(conn, Buffer.from(result.body, 'base64'), true);
      else sendText(conn, result.body);
    }
  }

  function sendText(conn: Connection, text: string) {
    sendData(conn, Buffer.from(text, 'utf8'), false);
  }

  // Server-sent frames count against the idle timeout too: services on API Gateway keep idle
  // sockets open with server-side keep-alives alone, up to the two-hour limit.
  function sendData(conn: Connection, data: Buffer, binary: boolean) {
    if (conn.socket.readyState !== conn.socket.OPEN) return;
    conn.lastTrafficAt = Date.now();
    conn.socket.send(data, { binary });
  }

  function fireDisconnect(
    info: ConnectionInfo,
    authorizer: WsAuthorizerContext | undefined,
    status: CloseStatus,
  ) {
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

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => log({ event: 'server.error', error: error.message }));
  port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      stopping = true;
      for (const socket of handshaking) socket.destroy();
      const live = [...connections.values()];
      for (const conn of live) closeBy(conn, { code: 1001, reason: GOING_AWAY }, GOING_AWAY);
      const allClosed = Promise.all(live.map((conn) => conn.closed));
      await Promise.race([allClosed, delay(CLOSE_GRACE_MS)]);
      for (const conn of live) conn.socket.terminate();
      await allClosed;
      await Promise.race([settle(inflight), delay(HANDLER_GRACE_MS)]);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    })();
    return closing;
  };

  return {
    url: `ws://${urlHost}:${port}`,
    managementEndpoint: `http://${urlHost}:${port}/${stage}`,
    managementCredentials,
    region,
    port,
    connectionCount: () => connections.size,
    close,
  };
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

async function invoke<E, T>(handler: (event: E) => Promise<T>, event: E): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await handler(event) };
  } catch (error) {
    return { ok: false, error };
  }
}

/** The error a Lambda authorizer raises to make API Gateway answer 401. */
function isUnauthorized(error: unknown): boolean {
  return error === 'Unauthorized' || (error instanceof Error && error.message === 'Unauthorized');
}

type ConnectAnswer = { status: number; body?: string; protocol?: string } | { error: string };

/** Reads a `$connect` Lambda proxy result; no result at all accepts the connection. */
function readConnectResult(result: unknown): ConnectAnswer {
  if (result === undefined || result === null) return { status: 200 };
  if (typeof result !== 'object' || Array.isArray(result)) return { error: 'result is not an object' };
  const { statusCode, body, headers } = result as Record<string, unknown>;
  const status = statusCode ?? 200;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) {
    return { error: 'statusCode is not an HTTP status' };
  }
  const answer: { status: number; body?: string; protocol?: string } = { status };
  if (typeof body === 'string') answer.body = body;
  const protocol = findHeader(
    typeof headers === 'object' && headers !== null ? (headers as Record<string, unknown>) : undefined,
    'Sec-WebSocket-Protocol',
  );
  if (protocol !== undefined) {
    const value = String(protocol).trim();
    if (!TOKEN_PATTERN.test(value)) return { error: 'Sec-WebSocket-Protocol is not a single token' };
    answer.protocol = value;
  }
  return answer;
}

/** The checks `ws` makes, done before the authorizer so a malformed upgrade never reaches it. */
function invalidHandshake(req: IncomingMessage): string | undefined {
  if (req.method !== 'GET') return 'method is not GET';
  if (req.headers.upgrade?.toLowerCase() !== 'websocket') return 'Upgrade is not websocket';
  if (!KEY_PATTERN.test(req.headers['sec-websocket-key'] ?? '')) return 'invalid Sec-WebSocket-Key';
  if (req.headers['sec-websocket-version'] !== '13') return 'Sec-WebSocket-Version is not 13';
  const offered = req.headers['sec-websocket-protocol'];
  if (offered !== undefined) {
    const names = offered.split(',').map((p) => p.trim());
    if (!names.every((p) => TOKEN_PATTERN.test(p)) || new Set(names).size !== names.length) {
      return 'invalid Sec-WebSocket-Protocol';
    }
  }
  return undefined;
}

/** Answers a refused handshake with a plain HTTP response, then drops the socket. */
function refuse(socket: Duplex, status: number, body: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}`,
    'Connection: close',
    `Content-Length: ${Buffer.byteLength(body)}`,
  ];
  if (body.startsWith('{')) lines.push('Content-Type: application/json');
  socket.once('finish', () => socket.destroy());
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
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

function normalizeIp(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

async function settle(work: Set<Promise<unknown>>): Promise<void> {
  while (work.size > 0) await Promise.allSettled([...work]);
}
