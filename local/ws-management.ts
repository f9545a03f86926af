import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connectionsApi, type SignedConnectionsApi } from '../lambdas/core/connections-api.ts';
import type { WsIdentity } from '../lambdas/edge/ws-types.ts';

/**
 * The `@connections` client of the local system's handlers and of the users CLI: signed as on
 * AWS, over a keep-alive agent, with one set of local credentials for both.
 */
export function localConnectionsApi(endpoint: string): SignedConnectionsApi {
  return connectionsApi({
    endpoint,
    region: 'local',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
}

/** What the `@connections` API needs of a live socket. */
export interface ManagedConnection {
  connectedAt: number;
  lastActiveAt: number;
  identity: WsIdentity;
  send(data: Buffer): void;
  disconnect(): void;
}

export interface ManagementApiOptions {
  stage: string;
  maxMessageBytes: number;
  /** A connection that is open and not closing, or undefined (answered with 410). */
  lookup(connectionId: string): ManagedConnection | undefined;
  log(line: Record<string, unknown>): void;
  /** Tests only: a status to answer instead of serving the call (410, 429 or 500), or undefined to serve it. */
  fault?: ManagementFault;
}

export type ManagementFault = (method: string, connectionId: string) => 410 | 429 | 500 | undefined;

/** The error each injectable status carries, as API Gateway names it. */
const FAULT_ERRORS = {
  410: 'GoneException',
  429: 'LimitExceededException',
  500: 'InternalServerErrorException',
} as const;

type Route = { kind: 'connection'; connectionId: string } | { kind: 'wrong-stage' } | { kind: 'none' };

/**
 * Serves `POST|GET|DELETE /<stage>/@connections/<id>` in the restJson1 shape that
 * `@aws-sdk/client-apigatewaymanagementapi` parses: errors carry `x-amzn-ErrorType`, which the SDK
 * reads first to pick the exception class. Signatures are not checked.
 */
export function createManagementApi(options: ManagementApiOptions) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const route = matchRoute(req.url ?? '/', options.stage);
    const method = req.method ?? 'GET';
    const answer = (status: number, body?: unknown, errorType?: string) => {
      options.log({
        event: 'management',
        method,
        status,
        ...(route.kind === 'connection' ? { connectionId: route.connectionId } : {}),
      });
      sendJson(res, status, body, errorType);
    };

    if (route.kind === 'wrong-stage') {
      // API Gateway answers 403 when the endpoint lacks the stage, a common deployment mistake.
      drain(req, () => answer(403, { message: 'Forbidden' }, 'ForbiddenException'));
      return;
    }
    if (route.kind === 'none' || !['POST', 'GET', 'DELETE'].includes(method)) {
      drain(req, () => answer(404, { message: 'Not Found' }));
      return;
    }
    const { connectionId } = route;
    const fault = options.fault?.(method, connectionId);
    if (fault) {
      drain(req, () => answer(fault, { message: FAULT_ERRORS[fault] }, FAULT_ERRORS[fault]));
      return;
    }

    if (method === 'POST') {
      readBody(req, options.maxMessageBytes, (body) => {
        if (body === 'too-large') {
          answer(413, { message: 'Request entity too large' }, 'PayloadTooLargeException');
          return;
        }
        const connection = options.lookup(connectionId);
        if (!connection) return answer(410, {}, 'GoneException');
        connection.send(body);
        answer(200);
      });
      return;
    }

    drain(req, () => {
      const connection = options.lookup(connectionId);
      if (!connection) return answer(410, {}, 'GoneException');
      if (method === 'GET') {
        answer(200, {
          connectedAt: new Date(connection.connectedAt).toISOString(),
          identity: connection.identity,
          lastActiveAt: new Date(connection.lastActiveAt).toISOString(),
        });
        return;
      }
      connection.disconnect();
      answer(204);
    });
  };
}

/** Finds the connection a path names; a path with `@connections` under another stage is refused. */
function matchRoute(url: string, stage: string): Route {
  const path = url.split('?')[0] ?? '';
  let segments: string[];
  try {
    segments = path.split('/').slice(1).map(decodeURIComponent);
  } catch {
    return { kind: 'none' };
  }
  const at = segments.indexOf('@connections');
  if (at < 0 || at !== segments.length - 2) return { kind: 'none' };
  const connectionId = segments[at + 1];
  if (!connectionId) return { kind: 'none' };
  if (at === 1 && segments[0] === stage) return { kind: 'connection', connectionId };
  return at <= 1 ? { kind: 'wrong-stage' } : { kind: 'none' };
}

function sendJson(res: ServerResponse, status: number, body: unknown, errorType: string | undefined): void {
  const payload = body === undefined ? '' : JSON.stringify(body);
  const headers: Record<string, string | number> = {
    'Content-Length': Buffer.byteLength(payload),
    'x-amzn-RequestId': randomUUID(),
  };
  if (payload !== '') headers['Content-Type'] = 'application/json';
  if (errorType) headers['x-amzn-ErrorType'] = errorType;
  res.writeHead(status, headers);
  res.end(payload);
}

function readBody(req: IncomingMessage, limit: number, done: (body: Buffer | 'too-large') => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
  });
  req.on('end', () => done(size > limit ? 'too-large' : Buffer.concat(chunks)));
  req.on('error', () => req.destroy());
}

function drain(req: IncomingMessage, done: () => void): void {
  req.resume();
  req.on('end', done);
  req.on('error', () => req.destroy());
}
