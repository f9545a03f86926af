import { type IncomingMessage, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { WsAuthorizerContext } from '../lambdas/edge/ws-types.ts';
import { hasIdentity, type IdentitySource, judgeAuthorizerResult } from './ws-authorizer.ts';
import { type ConnectionLifecycle, GOING_AWAY, invoke, messageOf } from './ws-connection.ts';
import {
  addForwardingHeaders,
  buildAuthorizerEvent,
  buildConnectEvent,
  type ConnectionInfo,
  findHeader,
  newAwsId,
  parseQuery,
  parseRawHeaders,
} from './ws-events.ts';
import type { WsRouteHandlers } from './ws-gateway.ts';

export interface HandshakeOptions {
  readonly routes: Pick<WsRouteHandlers, 'authorizer' | 'connect'>;
  readonly identitySources: readonly IdentitySource[];
  readonly stageVariables: Record<string, string>;
  readonly host: string;
  readonly stage: string;
  readonly apiId: string;
  readonly maxMessageBytes: number;
  /** The port the gateway listens on (known once it does). */
  readonly port: () => number;
  /** True once the gateway is closing: new handshakes get 503. */
  readonly stopping: () => boolean;
  readonly log: (line: Record<string, unknown>) => void;
  /** Where an accepted socket lives on. */
  readonly connections: ConnectionLifecycle;
}

/** What one handshake carries from step to step. */
interface Attempt {
  readonly req: IncomingMessage;
  readonly socket: Duplex;
  readonly info: ConnectionInfo;
  readonly request: ReturnType<typeof addForwardingHeaders>;
  readonly requestId: string;
  readonly now: number;
  readonly entry: Record<string, unknown>;
}

/** A step's verdict: go on (with the authorizer's context), or it has answered the client itself. */
type Step = { readonly go: true; readonly authorizer?: WsAuthorizerContext } | { readonly go: false };
const STOPPED: Step = { go: false };

const KEY_PATTERN = /^[+/0-9A-Za-z]{22}==$/;
const TOKEN_PATTERN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const INTERNAL = JSON.stringify({ message: 'Internal server error' });

/**
 * The `$connect` pipeline of the gateway, as `ws`'s `handleUpgrade` is to its sockets:
 * the upgrade's own checks, the identity sources, the REQUEST authorizer, the `$connect`
 * route (which alone may pick the subprotocol), then the upgrade, handed to the life cycle.
 * Every refusal is a plain HTTP answer with API Gateway's status and body.
 */
export class HandshakePipeline {
  /** Upgrades still being decided; closing the gateway cuts them off. */
  private readonly pending = new Set<Duplex>();
  private readonly selectedProtocol = new WeakMap<IncomingMessage, string>();
  private readonly wss: WebSocketServer;

  constructor(private readonly options: HandshakeOptions) {
    // The subprotocol answer is only ever what $connect returned: never a default pick by ws.
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: options.maxMessageBytes,
      handleProtocols: (_offered, req) => this.selectedProtocol.get(req) ?? false,
    });
    this.wss.on('headers', (headers, req) => {
      const protocol = this.selectedProtocol.get(req);
      if (protocol && req.headers['sec-websocket-protocol'] === undefined) {
        headers.push(`Sec-WebSocket-Protocol: ${protocol}`);
      }
    });
  }

  /** Destroys every socket still in its handshake. */
  abortPending(): void {
    for (const socket of this.pending) socket.destroy();
  }

  /** Decides one upgrade request, from its first check to the open socket or a refusal. */
  async handle(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const { log } = this.options;
    socket.on('error', (error) => log({ event: 'socket.error', error: messageOf(error) }));
    if (this.options.stopping()) return refuse(socket, 503, '');
    this.pending.add(socket);
    socket.once('close', () => this.pending.delete(socket));
    const now = Date.now();
    const sourceIp = normalizeIp(req.socket.remoteAddress);
    const base = { requestId: newAwsId(), ip: sourceIp, eventType: 'CONNECT', routeKey: '$connect' };
    try {
      const invalid = invalidHandshake(req);
      if (invalid) {
        log({ ...base, event: 'ws.handshake_invalid', status: 400, error: invalid });
        return refuse(socket, 400, '');
      }
      const attempt = this.attempt(req, socket, base, now);
      const authorized = await this.authorize(attempt);
      if (!authorized.go) return;
      const connected = await this.connect(attempt, authorized.authorizer);
      if (!connected.go) return;
      this.upgrade(attempt, head, authorized.authorizer);
    } catch (error) {
      log({ ...base, event: 'ws.handshake_error', status: 500, error: messageOf(error) });
      refuse(socket, 500, INTERNAL);
    } finally {
      this.pending.delete(socket);
    }
  }

  private attempt(
    req: IncomingMessage,
    socket: Duplex,
    base: { requestId: string; ip: string },
    now: number,
  ): Attempt {
    const { host, stage, apiId } = this.options;
    const port = this.options.port();
    const raw = { ...parseRawHeaders(req.rawHeaders), ...parseQuery(req.url ?? '/') };
    const request = addForwardingHeaders(raw, base.ip, port, now);
    const userAgent = findHeader(raw.headers, 'User-Agent');
    const info: ConnectionInfo = {
      connectionId: newAwsId(),
      connectedAt: now,
      identity: { sourceIp: base.ip, ...(typeof userAgent === 'string' ? { userAgent } : {}) },
      domainName: req.headers.host ?? `${host}:${port}`,
      stage,
      apiId,
    };
    const entry = { ...base, connectionId: info.connectionId };
    return { req, socket, info, request, requestId: base.requestId, now, entry };
  }

  /** The identity sources and the REQUEST authorizer: 401, 403 or 500, or its context. */
  private async authorize(a: Attempt): Promise<Step> {
    const { routes, identitySources, stageVariables, log } = this.options;
    if (!routes.authorizer) return { go: true };
    if (!hasIdentity(identitySources, a.request)) {
      log({ ...a.entry, event: 'ws.denied', status: 401, error: 'identity source missing' });
      refuse(a.socket, 401, JSON.stringify({ message: 'Unauthorized' }));
      return STOPPED;
    }
    const event = buildAuthorizerEvent(a.info, a.request, stageVariables, a.requestId, a.now);
    const outcome = await invoke(routes.authorizer, event);
    if (!outcome.ok) {
      const unauthorized = isUnauthorized(outcome.error);
      const status = unauthorized ? 401 : 500;
      log({ ...a.entry, event: 'ws.denied', status, error: messageOf(outcome.error) });
      refuse(a.socket, status, unauthorized ? JSON.stringify({ message: 'Unauthorized' }) : INTERNAL);
      return STOPPED;
    }
    const verdict = judgeAuthorizerResult(outcome.value, event.methodArn);
    if (verdict.outcome === 'deny') {
      log({ ...a.entry, event: 'ws.denied', status: 403 });
      refuse(a.socket, 403, JSON.stringify({ message: 'Forbidden' }));
      return STOPPED;
    }
    if (verdict.outcome === 'invalid') {
      log({ ...a.entry, event: 'ws.denied', status: 500, error: `authorizer: ${verdict.reason}` });
      refuse(a.socket, 500, INTERNAL);
      return STOPPED;
    }
    return { go: true, authorizer: verdict.context };
  }

  /** The `$connect` route: its status answers the handshake, its header picks the subprotocol. */
  private async connect(a: Attempt, authorizer: WsAuthorizerContext | undefined): Promise<Step> {
    const { routes, stageVariables, log } = this.options;
    if (!routes.connect) return { go: true };
    const event = buildConnectEvent(a.info, a.request, stageVariables, authorizer, a.requestId, a.now);
    const outcome = await invoke(routes.connect, event);
    // A function error reaches a WebSocket client as 502, as for Lambda proxy integrations.
    if (!outcome.ok) {
      log({ ...a.entry, event: 'ws.connect_failed', status: 502, error: messageOf(outcome.error) });
      refuse(a.socket, 502, INTERNAL);
      return STOPPED;
    }
    const answer = readConnectResult(outcome.value);
    if ('error' in answer) {
      log({ ...a.entry, event: 'ws.connect_failed', status: 502, error: answer.error });
      refuse(a.socket, 502, INTERNAL);
      return STOPPED;
    }
    if (answer.status < 200 || answer.status > 299) {
      log({ ...a.entry, event: 'ws.denied', status: answer.status });
      refuse(a.socket, answer.status, answer.body ?? '');
      return STOPPED;
    }
    if (answer.protocol) this.selectedProtocol.set(a.req, answer.protocol);
    return { go: true };
  }

  /** Completes the upgrade; a socket lost meanwhile still gets its `$disconnect`, as on AWS. */
  private upgrade(a: Attempt, head: Buffer, authorizer: WsAuthorizerContext | undefined): void {
    const { connections, log } = this.options;
    const { socket, info } = a;
    if (this.options.stopping() || !socket.readable || !socket.writable) {
      socket.destroy();
      const status = this.options.stopping()
        ? { code: 1001, reason: GOING_AWAY }
        : { code: 1006, reason: 'Connection lost' };
      connections.fireDisconnect(info, authorizer, status);
      return;
    }
    let opened = false;
    this.wss.handleUpgrade(a.req, socket, head, (ws) => {
      opened = true;
      connections.open(ws, socket, info, authorizer);
      log({ ...a.entry, event: 'ws.connect', status: 200 });
    });
    if (!opened) connections.fireDisconnect(info, authorizer, { code: 1006, reason: 'Connection lost' });
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
export function refuse(socket: Duplex, status: number, body: string): void {
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

function normalizeIp(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
