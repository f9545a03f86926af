import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connectionsApi, type SignedConnectionsApi } from '../lambdas/aws/connections-api.ts';
import type { WsIdentity } from '../lambdas/edge/ws-types.ts';
import { type SigningCredentials, verifySigV4 } from './sigv4.ts';

/**
 * The `@connections` client of the local system's handlers and of the users CLI: signed as on
 * AWS, over a keep-alive agent, with the gateway's credentials of this run (see
 * `managementCredentials`): the gateway refuses any call not signed with them.
 */
export function localConnectionsApi(
  endpoint: string,
  credentials: SigningCredentials,
  region = 'local',
): SignedConnectionsApi {
  return connectionsApi({ endpoint, region, credentials });
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
  /** Every call must be signed (SigV4, service `execute-api`) with these, in `region`. */
  credentials: SigningCredentials;
  region: string;
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
 * reads first to pick the exception class. As on AWS, where the API needs IAM, every call must
 * carry a valid SigV4 signature: unsigned or badly signed calls get 403 `ForbiddenException`
 * before anything else is looked at, so no one without the credentials can read, post to
 * or close a socket.
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

    // The whole body is read and hashed first, whatever the call: the signature covers it.
    readBody(req, options.maxMessageBytes, (body, bodySha256) => {
      const verdict = verifySigV4(
        { method, url: req.url ?? '/', headers: req.headers, bodySha256 },
        { credentials: options.credentials, region: options.region, service: 'execute-api', now: Date.now() },
      );
      if (!verdict.ok) return answer(403, { message: verdict.reason }, 'ForbiddenException');

      // API Gateway answers 403 when the endpoint lacks the stage, a common deployment mistake.
      if (route.kind === 'wrong-stage') return answer(403, { message: 'Forbidden' }, 'ForbiddenException');
      if (route.kind === 'none' || !['POST', 'GET', 'DELETE'].includes(method)) {
        return answer(404, { message: 'Not Found' });
      }
      const fault = options.fault?.(method, route.connectionId);
      if (fault) return answer(fault, { message: FAULT_ERRORS[fault] }, FAULT_ERRORS[fault]);
      if (method === 'POST' && body === 'too-large') {
        return answer(413, { message: 'Request entity too large' }, 'PayloadTooLargeException');
      }
      const connection = options.lookup(route.connectionId);
      if (!connection) return answer(410, {}, 'GoneException');
      if (method === 'POST') {
        connection.send(body === 'too-large' ? Buffer.alloc(0) : body);
        return answer(200);
      }
      if (method === 'GET') {
        return answer(200, {
          connectedAt: new Date(connection.connectedAt).toISOString(),
          identity: connection.identity,
          lastActiveAt: new Date(connection.lastActiveAt).toISOString(),
        });
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

function readBody(
  req: IncomingMessage,
  limit: number,
  done: (body: Buffer | 'too-large', sha256: string) => void,
): void {
  const chunks: Buffer[] = [];
  const hash = createHash('sha256');
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    hash.update(chunk);
    if (size <= limit) chunks.push(chunk);
  });
  req.on('end', () => done(size > limit ? 'too-large' : Buffer.concat(chunks), hash.digest('hex')));
  req.on('error', () => req.destroy());
}
