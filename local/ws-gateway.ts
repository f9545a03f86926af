import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type {
  AuthorizerResult,
  WsAuthorizerEvent,
  WsProxyEvent,
  WsProxyResult,
} from '../lambdas/edge/ws-types.ts';
import type { SigningCredentials } from './sigv4.ts';
import { parseIdentitySources } from './ws-authorizer.ts';
import { ConnectionLifecycle, delay, messageOf } from './ws-connection.ts';
import { HandshakePipeline } from './ws-handshake.ts';
import { createManagementApi, type ManagementFault } from './ws-management.ts';

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

/** How long close() waits for clients to answer the close frame before cutting them off. */
const CLOSE_GRACE_MS = 250;
/** How long close() waits for route handlers still running. */
const HANDLER_GRACE_MS = 5000;

/**
 * Starts a local emulation of an API Gateway WebSocket API and its `@connections` management API
 * on one port (every management call SigV4-signed, as IAM requires on AWS). Handlers are plain
 * async functions taking API Gateway's events. Upgrades go through the handshake pipeline
 * (local/ws-handshake.ts); open sockets live in the connection life cycle (local/ws-connection.ts).
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
  const region = options.region ?? 'local';
  const stageVariables = { ...options.stageVariables };
  const maxMessageBytes = positive('maxMessageBytes', options.maxMessageBytes ?? 128 * 1024);
  const log = safeLog(options.log);
  const inflight = new InFlight();
  let stopping = false;
  let port = 0;

  const connections = socketLifecycle(options, stageVariables, log, inflight.track);
  const handshakes = new HandshakePipeline({
    routes: options.routes,
    identitySources: parseIdentitySources(options.identitySources ?? []),
    stageVariables,
    host,
    stage,
    apiId: options.apiId ?? 'local',
    maxMessageBytes,
    port: () => port,
    stopping: () => stopping,
    log,
    connections,
  });
  const managementCredentials = options.managementCredentials ?? randomManagementCredentials();
  const management = createManagementApi({
    stage,
    maxMessageBytes,
    credentials: managementCredentials,
    region,
    log,
    ...(options.managementFault ? { fault: options.managementFault } : {}),
    lookup: (connectionId) => connections.lookup(connectionId),
  });

  const server = gatewayServer({ management, handshakes, log, track: inflight.track });
  port = await listen(server, options.port ?? 0, host, log);
  const urlHost = host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    url: `ws://${urlHost}:${port}`,
    managementEndpoint: `http://${urlHost}:${port}/${stage}`,
    managementCredentials,
    region,
    port,
    connectionCount: () => connections.size,
    close: () => {
      closing ??= (async () => {
        stopping = true;
        await stop({ server, handshakes, connections, inflight });
      })();
      return closing;
    },
  };
}

/** The life cycle of open sockets, with API Gateway's limits unless the options set others. */
function socketLifecycle(
  options: WsGatewayOptions,
  stageVariables: Record<string, string>,
  log: (line: Record<string, unknown>) => void,
  track: (work: Promise<unknown>) => void,
): ConnectionLifecycle {
  return new ConnectionLifecycle({
    routes: options.routes,
    stageVariables,
    routeResponse: options.returnResponseRoutes?.includes('$default') ?? false,
    maxFrameBytes: positive('maxFrameBytes', options.maxFrameBytes ?? 32 * 1024),
    idleTimeoutMs: positive('idleTimeoutMs', options.idleTimeoutMs ?? 10 * 60 * 1000),
    maxConnectionMs: positive('maxConnectionMs', options.maxConnectionMs ?? 2 * 60 * 60 * 1000),
    log,
    track,
  });
}

/** A random secret made at start, readable only from `managementCredentials` in this process. */
function randomManagementCredentials(): SigningCredentials {
  return { accessKeyId: 'local', secretAccessKey: randomBytes(32).toString('base64url') };
}

/** The access log with a time on each line; a failing sink must not take a connection down with it. */
function safeLog(sink: WsGatewayOptions['log']): (line: Record<string, unknown>) => void {
  return (line) => {
    try {
      sink?.({ time: new Date().toISOString(), ...line });
    } catch {
      // Dropped: see above.
    }
  };
}

/** One HTTP server for both APIs: plain requests go to `@connections`, upgrades to the handshake. */
function gatewayServer(parts: {
  management: (req: IncomingMessage, res: ServerResponse) => void;
  handshakes: HandshakePipeline;
  log: (line: Record<string, unknown>) => void;
  track: (work: Promise<unknown>) => void;
}): Server {
  const { management, handshakes, log, track } = parts;
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
    track(handshakes.handle(req, socket, head));
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    log({ event: 'http.client_error', error: error.code ?? error.message });
    if (error.code === 'ECONNRESET' || !socket.writable) socket.destroy();
    else socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });
  return server;
}

/** Listens, then logs later server errors instead of throwing them; resolves with the port. */
async function listen(
  server: Server,
  port: number,
  host: string,
  log: (line: Record<string, unknown>) => void,
): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => log({ event: 'server.error', error: error.message }));
  return (server.address() as AddressInfo).port;
}

/**
 * The stop sequence: no new handshakes, every socket closed with 1001 (each gets its
 * `$disconnect`), running handlers given their grace, then the server closed.
 */
async function stop(parts: {
  server: Server;
  handshakes: HandshakePipeline;
  connections: ConnectionLifecycle;
  inflight: InFlight;
}): Promise<void> {
  const { server, handshakes, connections, inflight } = parts;
  handshakes.abortPending();
  await connections.closeAll(CLOSE_GRACE_MS);
  await Promise.race([inflight.settled(), delay(HANDLER_GRACE_MS)]);
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** Handshakes and route handlers still running, so that closing can wait for them. */
class InFlight {
  private readonly work = new Set<Promise<unknown>>();

  readonly track = (work: Promise<unknown>): void => {
    this.work.add(work);
    void work.finally(() => this.work.delete(work));
  };

  async settled(): Promise<void> {
    while (this.work.size > 0) await Promise.allSettled([...this.work]);
  }
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
}
