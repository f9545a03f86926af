import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2 } from 'aws-lambda';
import { formatRequestTime } from './aws-time.ts';
import {
  type CompiledRoute,
  compileRoute,
  decodePath,
  type HttpHandler,
  type HttpRoute,
  matchRoute,
  type RouteMatch,
} from './http-routes.ts';

export type { HttpHandler, HttpRoute } from './http-routes.ts';

export interface CorsConfig {
  readonly allowOrigins: readonly string[];
  readonly allowHeaders: readonly string[];
  readonly allowMethods: readonly string[];
  /** Response headers a page may read (`access-control-expose-headers` on every answer). */
  readonly exposeHeaders?: readonly string[];
  readonly maxAgeS: number;
}

export interface HttpGatewayOptions {
  readonly routes: readonly HttpRoute[];
  readonly host?: string;
  readonly port?: number;
  readonly cors?: CorsConfig;
  /** Serves what no route matches (the demo page); returns false to fall through to 404. */
  readonly fallback?: (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;
  /** Payload limit, as API Gateway's 10 MB. */
  readonly maxBodyBytes?: number;
  /** Integration timeout, as API Gateway's 30 s. */
  readonly timeoutMs?: number;
  readonly log?: (line: Record<string, unknown>) => void;
}

export interface HttpGateway {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

const TEXT_TYPES = /^(application\/(json|[\w.+-]*\+json|x-www-form-urlencoded|xml|javascript)|text\/)/i;

/** Builds the HTTP API payload-2.0 event API Gateway would send for this request. */
function toEvent(
  req: IncomingMessage,
  url: URL,
  body: Buffer,
  { route, pathParameters }: RouteMatch,
): APIGatewayProxyEventV2 {
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  for (const [name, values] of Object.entries(req.headersDistinct)) {
    if (!values) continue;
    // Payload 2.0: lower-case names, repeated headers joined with commas, cookies apart.
    if (name === 'cookie') cookies.push(...values.join('; ').split(/;\s*/));
    else headers[name] = values.join(',');
  }
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = k in query ? `${query[k]},${v}` : v;
  const now = new Date();
  const contentType = req.headers['content-type'] ?? '';
  const isText = body.length === 0 || TEXT_TYPES.test(contentType);
  const sourceIp = req.socket.remoteAddress ?? '127.0.0.1';
  return {
    version: '2.0',
    routeKey: route.routeKey,
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    ...(cookies.length > 0 ? { cookies } : {}),
    headers,
    ...(Object.keys(query).length > 0 ? { queryStringParameters: query } : {}),
    ...(route.params.length > 0 ? { pathParameters } : {}),
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      domainName: req.headers.host ?? 'localhost',
      domainPrefix: (req.headers.host ?? 'localhost').split('.')[0] ?? 'localhost',
      http: {
        method: req.method ?? 'GET',
        path: url.pathname,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: sourceIp.replace(/^::ffff:/, ''),
        userAgent: req.headers['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      routeKey: route.routeKey,
      stage: '$default',
      time: formatRequestTime(now.getTime()),
      timeEpoch: now.getTime(),
    },
    ...(body.length > 0 ? { body: isText ? body.toString('utf8') : body.toString('base64') } : {}),
    isBase64Encoded: !isText,
  };
}

/** What the gateway answers on its own: no route, a bad path, an oversized body, a crash, a time-out. */
function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(text);
}

function writeResult(
  res: ServerResponse,
  result: APIGatewayProxyResultV2,
  extra: Record<string, string>,
): void {
  // Payload 2.0 lets a handler return a bare value: API Gateway then answers 200 with it as JSON.
  if (typeof result !== 'object' || result === null || !('statusCode' in result)) {
    send(res, 200, result, extra);
    return;
  }
  const headers: Record<string, string | string[]> = { ...extra };
  for (const [k, v] of Object.entries(result.headers ?? {})) headers[k.toLowerCase()] = String(v);
  if (result.cookies?.length) headers['set-cookie'] = result.cookies;
  const body =
    result.body === undefined
      ? Buffer.alloc(0)
      : Buffer.from(result.body, result.isBase64Encoded ? 'base64' : 'utf8');
  headers['content-length'] = String(body.length);
  res.writeHead(result.statusCode ?? 200, headers);
  res.end(body);
}

function corsHeaders(cors: CorsConfig | undefined, origin: string | undefined): Record<string, string> {
  if (!cors || !origin || !cors.allowOrigins.includes(origin.toLowerCase())) return {};
  return {
    'access-control-allow-origin': origin,
    vary: 'origin',
    ...(cors.exposeHeaders?.length ? { 'access-control-expose-headers': cors.exposeHeaders.join(',') } : {}),
  };
}

/** What every request of one gateway is served with. */
interface Served {
  readonly routes: readonly CompiledRoute[];
  readonly cors: CorsConfig | undefined;
  readonly fallback: HttpGatewayOptions['fallback'];
  readonly maxBody: number;
  readonly timeoutMs: number;
  readonly log: (line: Record<string, unknown>) => void;
}

/**
 * A local HTTP API: matches route keys as API Gateway does, turns each request into a
 * payload-2.0 event for the very handler functions that run on Lambda, and writes
 * their results back. Unmatched routes get API Gateway's own 404 body; oversized
 * bodies 413; handler crashes 500 and time-outs 503, with API Gateway's messages.
 */
export async function startHttpGateway(options: HttpGatewayOptions): Promise<HttpGateway> {
  const served: Served = {
    routes: options.routes.map(compileRoute),
    cors: options.cors,
    fallback: options.fallback,
    maxBody: options.maxBodyBytes ?? 10 * 1024 * 1024,
    timeoutMs: options.timeoutMs ?? 30_000,
    log: options.log ?? (() => {}),
  };
  const server: Server = createServer((req, res) => {
    serve(served, req, res).catch(() => {
      if (!res.headersSent) send(res, 500, { message: 'Internal Server Error' });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host ?? '127.0.0.1';
  return {
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** One request, as API Gateway takes it: path check, CORS preflight, route, body limit, handler. */
async function serve(served: Served, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const cors = corsHeaders(served.cors, req.headers.origin);
  if (decodePath(url.pathname) === undefined) {
    // Refused before any route or handler runs: a path parameter could not be decoded.
    req.resume();
    send(res, 400, { error: 'invalid_request', message: 'the path is not valid percent-encoding' }, cors);
    served.log({ route: '-', status: 400, ms: 0, ip: req.socket.remoteAddress ?? '' });
    return;
  }
  if (req.method === 'OPTIONS' && served.cors && req.headers['access-control-request-method']) {
    answerPreflight(res, served.cors, cors);
    return;
  }
  const found = matchRoute(served.routes, req.method, url.pathname);
  if (!found) {
    if (served.fallback && (await served.fallback(req, res))) return;
    send(res, 404, { message: 'Not Found' }, cors);
    return;
  }
  const body = await readBody(req, res, served.maxBody, cors);
  if (!body) return;
  const event = toEvent(req, url, body, found);
  const started = Date.now();
  await answerWith(res, found.route.handler, event, served.timeoutMs, cors);
  // Access log without the query string: it may carry a token.
  served.log({
    route: found.route.routeKey,
    status: res.statusCode,
    ms: Date.now() - started,
    ip: event.requestContext.http.sourceIp,
  });
}

function answerPreflight(res: ServerResponse, config: CorsConfig, cors: Record<string, string>): void {
  res.writeHead(204, {
    'x-content-type-options': 'nosniff',
    ...cors,
    ...(Object.keys(cors).length > 0
      ? {
          'access-control-allow-methods': config.allowMethods.join(','),
          'access-control-allow-headers': config.allowHeaders.join(','),
          'access-control-max-age': String(config.maxAgeS),
        }
      : {}),
  });
  res.end();
}

/** The request's body, or undefined once it has passed `maxBody` (answered 413, the request cut off). */
async function readBody(
  req: IncomingMessage,
  res: ServerResponse,
  maxBody: number,
  cors: Record<string, string>,
): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBody) {
      send(res, 413, { message: 'Request Entity Too Large' }, { ...cors, connection: 'close' });
      req.destroy();
      return undefined;
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** The handler's result written back, or API Gateway's 500 for a crash and 503 past the integration timeout. */
async function answerWith(
  res: ServerResponse,
  handler: HttpHandler,
  event: APIGatewayProxyEventV2,
  timeoutMs: number,
  cors: Record<string, string>,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const result = await Promise.race([
      handler(event),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
      }),
    ]);
    writeResult(res, result, cors);
  } catch (err) {
    const timedOut = (err as Error).message === 'timeout';
    send(
      res,
      timedOut ? 503 : 500,
      { message: timedOut ? 'Service Unavailable' : 'Internal Server Error' },
      cors,
    );
  } finally {
    clearTimeout(timer);
  }
}
