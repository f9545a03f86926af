import type { ConnectionsApi } from '../core/deps.ts';
import { type Answer, type AwsCredentials, signedHttp } from './signed-http.ts';

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

/** The SDK's label encoding (RFC 3986: `encodeURIComponent` plus `!'()*`); ids end in `=`. */
const encodeLabel = (value: string) =>
  encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * `@connections` (PostToConnection, GetConnection, DeleteConnection) signed with the SDK's own
 * SigV4 signer (service `execute-api`) and sent over a keep-alive `node:http(s)` agent
 * (lambdas/aws/signed-http.ts): the requests of `@aws-sdk/client-apigatewaymanagementapi`
 * without its per-command middleware, endpoint rules and serde, for a quarter to two fifths of
 * its CPU per post (BENCHMARKS.md). Plain: no retries here; a caller that wants them wraps it.
 *
 * @example
 * const api = connectionsApi({ endpoint: 'https://abc.execute-api.eu-west-1.amazonaws.com/prod',
 *   region: 'eu-west-1', credentials: credentialsFromEnv(process.env) });
 * await api.post(connectionId, JSON.stringify({ type: 'pong' })); // false: the socket is gone
 */
export function connectionsApi(options: ConnectionsApiOptions): SignedConnectionsApi {
  const http = signedHttp({ ...options, service: 'execute-api' });
  const call = async (method: 'POST' | 'GET' | 'DELETE', connectionId: string, body?: Uint8Array) => {
    const answer = await http.send({
      method,
      path: `/@connections/${encodeLabel(connectionId)}`,
      ...(body ? { headers: { 'content-type': 'application/octet-stream' }, body } : {}),
    });
    if (answer.status >= 200 && answer.status < 300) return true;
    if (answer.status === 410) return false;
    throw refusal(answer);
  };
  const encoder = new TextEncoder();
  return {
    post: (id, data) => call('POST', id, encoder.encode(data)),
    exists: (id) => call('GET', id),
    close: (id) => call('DELETE', id),
    destroy: () => http.destroy(),
  };
}

/** The region of an `execute-api` endpoint, when its host names one. */
export function regionOfEndpoint(endpoint: string): string | undefined {
  return /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/.exec(new URL(endpoint).hostname)?.[1];
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
