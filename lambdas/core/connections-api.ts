import {
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type RequestOptions,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';
import type { ConnectionsApi } from './deps.ts';

/** AWS credentials as Lambda puts them in the environment (the session token with a role). */
export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string | undefined;
}

export interface ConnectionsApiOptions {
  /** The stage's callback URL, `https://{apiId}.execute-api.{region}.amazonaws.com/{stage}`. */
  readonly endpoint: string;
  readonly region: string;
  readonly credentials: AwsCredentials;
  /** Sockets kept open to the endpoint (default 64, above the fan-out's 16 posts at a time). */
  readonly maxSockets?: number;
  /** A request that has no answer after this long fails with `TimeoutError` (default 5000 ms). */
  readonly timeoutMs?: number;
}

/** `@connections` over one keep-alive agent; `destroy()` closes its sockets. */
export interface SignedConnectionsApi extends ConnectionsApi {
  destroy(): void;
}

/**
 * A refusal of the `@connections` API, named as the AWS SDK names it (`PayloadTooLargeException`,
 * `LimitExceededException`, `ForbiddenException`, ...) and carrying the SDK's `$metadata` and
 * `$fault`, so callers and retry wrappers can treat it like an SDK error. 410 is no error: the
 * calls answer `false`.
 */
export class ConnectionsApiError extends Error {
  readonly statusCode: number;
  readonly $fault: 'client' | 'server';
  readonly $metadata: { readonly httpStatusCode: number; readonly requestId?: string | undefined };
  readonly $retryable: { readonly throttling: boolean } | undefined;

  constructor(name: string, statusCode: number, message: string, requestId?: string) {
    super(message);
    this.name = name;
    this.statusCode = statusCode;
    this.$fault = statusCode >= 500 ? 'server' : 'client';
    this.$metadata = { httpStatusCode: statusCode, requestId };
    this.$retryable = statusCode === 429 ? { throttling: true } : undefined;
  }
}

/** Error names by status, for answers without `x-amzn-ErrorType` (the names of the SDK's exceptions). */
const NAME_BY_STATUS: Readonly<Record<number, string>> = {
  400: 'BadRequestException',
  403: 'ForbiddenException',
  404: 'NotFoundException',
  410: 'GoneException',
  413: 'PayloadTooLargeException',
  429: 'LimitExceededException',
};

/** Error bodies are short JSON; a longer one is cut, never buffered whole. */
const MAX_ERROR_BODY = 4096;

/** The SDK's label encoding (RFC 3986: `encodeURIComponent` plus `!'()*`); ids end in `=`. */
const encodeLabel = (value: string) =>
  encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * `@connections` (PostToConnection, GetConnection, DeleteConnection) signed with the SDK's own
 * SigV4 signer (service `execute-api`) and sent over a keep-alive `node:http(s)` agent: the same
 * requests as `@aws-sdk/client-apigatewaymanagementapi`, without the client's per-command
 * middleware, endpoint rules and serde, which cost about three times the CPU of the request
 * itself. A socket that the server closed while it idled (a Lambda container thawed after a
 * pause) is noticed only when reused; such a request, failed before any answer, is sent once more
 * on a fresh socket, as the Node.js documentation advises.
 *
 * @example
 * const api = connectionsApi({ endpoint: 'https://abc.execute-api.eu-west-1.amazonaws.com/prod',
 *   region: 'eu-west-1', credentials: credentialsFromEnv(process.env) });
 * await api.post(connectionId, JSON.stringify({ type: 'pong' })); // false: the socket is gone
 */
export function connectionsApi(options: ConnectionsApiOptions): SignedConnectionsApi {
  const url = new URL(options.endpoint);
  const secure = url.protocol === 'https:';
  if (!secure && url.protocol !== 'http:')
    throw new Error(`unsupported @connections endpoint ${url.protocol}`);
  const send = secure ? httpsRequest : httpRequest;
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? 64, scheduling: 'lifo' as const };
  const agent = secure ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
  const timeoutMs = options.timeoutMs ?? 5000;
  const port = url.port ? Number(url.port) : undefined;
  const host = url.host; // with the port when it is not the scheme's default, as SigV4 signs it
  const base = url.pathname.replace(/\/+$/, '');
  const signer = new SignatureV4({
    service: 'execute-api',
    region: options.region,
    credentials: options.credentials,
    sha256: Sha256,
  });

  const call = async (method: 'POST' | 'GET' | 'DELETE', connectionId: string, body?: Uint8Array) => {
    const path = `${base}/@connections/${encodeLabel(connectionId)}`;
    const headers: Record<string, string> = { host };
    if (body) {
      headers['content-type'] = 'application/octet-stream';
      headers['content-length'] = String(body.byteLength);
    }
    const signed = await signer.sign({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      ...(port === undefined ? {} : { port }),
      path,
      query: {},
      headers,
      ...(body ? { body } : {}),
    });
    const request: RequestOptions = {
      method,
      hostname: url.hostname,
      ...(port === undefined ? {} : { port }),
      path,
      headers: signed.headers,
      agent,
    };
    let response: Answer;
    try {
      response = await exchange(send, request, body, timeoutMs);
    } catch (err) {
      if (!(err instanceof StaleSocketError)) throw err;
      response = await exchange(send, request, body, timeoutMs);
    }
    if (response.status >= 200 && response.status < 300) return true;
    if (response.status === 410) return false;
    throw refusal(response);
  };

  const encoder = new TextEncoder();
  return {
    post: (id, data) => call('POST', id, encoder.encode(data)),
    exists: (id) => call('GET', id),
    close: (id) => call('DELETE', id),
    destroy: () => agent.destroy(),
  };
}

/**
 * The credentials Lambda gives a function in its environment (the execution role's, with a
 * session token), read once: they last as long as the container. Missing ones fail the cold start.
 */
export function credentialsFromEnv(env: NodeJS.ProcessEnv): AwsCredentials {
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) {
    throw new Error('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set to sign @connections requests');
  }
  return { accessKeyId, secretAccessKey, sessionToken: env.AWS_SESSION_TOKEN || undefined };
}

/** The region of an `execute-api` endpoint, when its host names one. */
export function regionOfEndpoint(endpoint: string): string | undefined {
  return /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/.exec(new URL(endpoint).hostname)?.[1];
}

interface Answer {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

/** A keep-alive socket found closed by the server before any answer: safe to send again. */
class StaleSocketError extends Error {}

function exchange(
  send: typeof httpRequest,
  options: RequestOptions,
  body: Uint8Array | undefined,
  timeoutMs: number,
): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    let answered = false;
    const req = send(options, (res) => {
      answered = true;
      const status = res.statusCode ?? 0;
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        // Success answers carry nothing we use; an error's body is kept for its message only.
        if (status >= 300 && size < MAX_ERROR_BODY) chunks.push(chunk);
        size += chunk.length;
      });
      res.on('end', () =>
        resolve({
          status,
          headers: res.headers,
          body: Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => {
      const err = new Error(`@connections did not answer within ${timeoutMs} ms`);
      err.name = 'TimeoutError';
      req.destroy(err);
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (!answered && req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
        reject(new StaleSocketError(err.message, { cause: err }));
      } else {
        reject(err);
      }
    });
    req.end(body);
  });
}

function refusal(answer: Answer): ConnectionsApiError {
  // `x-amzn-ErrorType: GoneException:http://internal.amazon.com/...`: the name is before the colon.
  const header = answer.headers['x-amzn-errortype'];
  const typed = (Array.isArray(header) ? header[0] : header)?.split(':')[0]?.trim();
  const name =
    typed && /^[A-Za-z]{1,64}$/.test(typed)
      ? typed
      : (NAME_BY_STATUS[answer.status] ??
        (answer.status >= 500 ? 'InternalServerErrorException' : 'UnknownError'));
  let message = `@connections answered ${answer.status}`;
  try {
    const parsed = JSON.parse(answer.body) as { message?: unknown; Message?: unknown };
    const text = parsed.message ?? parsed.Message;
    if (typeof text === 'string' && text) message = text.slice(0, 200);
  } catch {
    // Not JSON: the status says enough.
  }
  const requestId = answer.headers['x-amzn-requestid'];
  return new ConnectionsApiError(
    name,
    answer.status,
    message,
    typeof requestId === 'string' ? requestId : undefined,
  );
}
